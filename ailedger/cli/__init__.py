"""The ``ailedger`` command: a thin shell over library calls. Signal handling lives here.

:func:`main` is the console script. It first checks that the ``server`` extra is
installed, so that a service that installed only the producer is told what to
install instead of shown an ImportError. Errors a person can act on end the
command with one line each (``ailedger.cli.errors``): exit 2 for bad input, 1 for
trouble at a server.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``ailedger`` command line."""
    from ailedger.extras import require

    require("server")
    from ailedger.cli.commands import app
    from ailedger.cli.errors import report, translate

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        # Our own errors say what happened and what to do: no traceback needed.
        report(error)
        sys.exit(error.exit_code)
