"""ailedger's benchmark suite: ``python -m bench`` (see bench/README.md).

Measures what a service pays per ``log()`` call and how fast workers move events
from the stream into Postgres, each next to a baseline measured in the same run.
"""
