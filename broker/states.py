"""Job states and the transitions between them (ARCHITECTURE.md, "Job lifecycle").

A dependency-free module shared by the engine, the stores and the API.

States are small ints so the engine can keep them in slots and compare them
cheaply; ``NAMES`` gives the wire name. ``ALLOWED[src]`` is a bit mask of the
states ``src`` may move to; everything else is an illegal transition.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = 0  # waiting on parents, not-before or retry backoff
READY: Final = 1  # claimable
LEASED: Final = 2
SUCCEEDED: Final = 3
DEAD: Final = 4  # dead-lettered
CANCELED: Final = 5
BLOCKED: Final = 6  # an ancestor went dead; can be replayed

NAMES: Final = ("pending", "ready", "leased", "succeeded", "dead", "canceled", "blocked")
BY_NAME: Final = {name: state for state, name in enumerate(NAMES)}
TERMINAL: Final = frozenset({SUCCEEDED, DEAD, CANCELED})


def _mask(*states: int) -> int:
    mask = 0
    for state in states:
        mask |= 1 << state
    return mask


ALLOWED: Final = (
    _mask(READY, CANCELED, BLOCKED),  # pending
    _mask(LEASED, PENDING, CANCELED, BLOCKED),  # ready
    _mask(SUCCEEDED, PENDING, READY, DEAD, CANCELED),  # leased
    _mask(),  # succeeded
    # a dead or canceled job leaves its state only by an operator's replay of
    # its run (a standalone replay clones it into a new job instead)
    _mask(READY, PENDING),  # dead
    _mask(READY, PENDING),  # canceled
    _mask(READY, PENDING, CANCELED),  # blocked (replay, cancel)
)


def allowed(src: int, dst: int) -> bool:
    return bool(ALLOWED[src] >> dst & 1)
