"""``python -m loadtests <scenario> [options]``: see ``cli.py`` and docs/loadtests.md."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
