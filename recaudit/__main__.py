"""``python -m recaudit``: the command line."""

from recaudit.cli import main

raise SystemExit(main())
