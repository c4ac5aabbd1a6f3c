"""The ``ailedger`` command: a thin shell over library calls. Signal handling lives here.

:func:`main` is the console script. It first checks that the ``server`` extra is
installed, so that a service that installed only the producer is told what to
install instead of shown an ImportError.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``ailedger`` command line."""
    from ailedger.extras import require

    require("server")
    from ailedger.cli.commands import app, console
    from worker.errors import AILedgerError

    try:
        app()
    except AILedgerError as exc:
        # Our own errors say what happened and what to do: no traceback needed.
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
