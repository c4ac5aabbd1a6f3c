from ailedger.cli import main

main()
