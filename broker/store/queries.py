"""Named SQL queries loaded from ``.sql`` files.

A file holds statements separated by ``-- name: <query_name>`` lines, so SQL
is written and reviewed as SQL and never concatenated from strings.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load(package: str, filename: str) -> dict[str, str]:
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query {name} defined twice")
        queries[name] = body.strip()
    return queries
