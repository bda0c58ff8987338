"""Interning of names (tenants, job types, workers) to dense small ints."""

from __future__ import annotations


class Interner:
    __slots__ = ("_ids", "_names")

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def id(self, name: str) -> int:
        """The id of ``name``, assigning the next one on first sight."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self._names)
            self._names.append(name)
        return found

    def find(self, name: str) -> int:
        """The id of ``name``, or -1 if it was never interned (does not assign)."""
        return self._ids.get(name, -1)

    def name(self, ident: int) -> str:
        return self._names[ident]

    @property
    def names(self) -> list[str]:
        """Every name, indexed by id (the interner's own list: do not change it)."""
        return self._names
