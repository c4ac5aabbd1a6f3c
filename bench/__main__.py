"""``python -m bench`` runs the whole suite; ``python -m bench --help`` lists the flags."""

from __future__ import annotations

from bench.run import main

raise SystemExit(main())
