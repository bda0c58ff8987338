"""DAG index (pure-Python twin and specification of ``dag_index.pyx``).

Per job: its state in the DAG, the count of parents that have not succeeded
yet, its parents and its children (in the order edges were added). Completing
a parent costs O(its children); failing one costs O(the descendants it blocks).

States: WAITING (unmet parents), READY (all parents succeeded), DONE
(succeeded), DEAD (failed for good or canceled), BLOCKED (an ancestor is DEAD).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

WAITING = 0
READY = 1
DONE = 2
DEAD = 3
BLOCKED = 4
UNKNOWN = -1

_MAX = 0x7FFF_FFFF_FFFF_FFFF


class _Node:
    __slots__ = ("children", "parents", "state", "unmet")

    def __init__(self, parents: list[int]) -> None:
        self.parents = parents
        self.children: list[int] = []
        self.unmet = 0
        self.state = WAITING


class DagIndex:
    """Readiness and failure propagation over job dependencies."""

    def __init__(self) -> None:
        self._nodes: dict[int, _Node] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, job: object) -> bool:
        return job in self._nodes

    def state(self, job: int) -> int:
        node = self._nodes.get(job)
        return UNKNOWN if node is None else node.state

    def unmet(self, job: int) -> int:
        node = self._nodes.get(job)
        return -1 if node is None else node.unmet

    def parents(self, job: int) -> list[int]:
        node = self._nodes.get(job)
        return [] if node is None else list(node.parents)

    def children(self, job: int) -> list[int]:
        node = self._nodes.get(job)
        return [] if node is None else list(node.children)

    def add(self, job: int, parents: Sequence[int]) -> int:
        """Add a job depending on ``parents`` (known jobs); returns its state.

        Parents that are DONE count as met; a DEAD or BLOCKED parent makes the
        new job BLOCKED at once.
        """
        if job < 0 or job > _MAX:
            raise ValueError("job must be a non-negative int64")
        if job in self._nodes:
            raise ValueError(f"job {job} is already in the DAG")
        unique = list(dict.fromkeys(parents))
        for parent in unique:
            if parent == job:
                raise ValueError("a job cannot depend on itself")
            if parent not in self._nodes:
                raise ValueError(f"unknown parent {parent}")
        node = _Node(unique)
        blocked = False
        for parent in unique:
            pnode = self._nodes[parent]
            pnode.children.append(job)
            if pnode.state in (DEAD, BLOCKED):
                blocked = True
            elif pnode.state != DONE:
                node.unmet += 1
        if blocked:
            node.state = BLOCKED
        elif node.unmet == 0:
            node.state = READY
        self._nodes[job] = node
        return node.state

    def complete_many(self, jobs: Sequence[int]) -> list[int]:
        """Mark READY jobs DONE; returns children that became READY, in order."""
        for job in jobs:
            node = self._nodes.get(job)
            if node is None or node.state != READY:
                raise ValueError(f"job {job} is not READY in the DAG")
        if len(set(jobs)) != len(jobs):
            raise ValueError("a job appears twice in the batch")
        ready: list[int] = []
        nodes = self._nodes
        for job in jobs:
            node = nodes[job]
            node.state = DONE
            for child in node.children:
                cnode = nodes.get(child)
                if cnode is None or cnode.state != WAITING:
                    continue
                cnode.unmet -= 1
                if cnode.unmet == 0:
                    cnode.state = READY
                    ready.append(child)
        return ready

    def fail(self, job: int) -> list[int]:
        """Mark a WAITING/READY job DEAD; returns the descendants now BLOCKED (BFS order)."""
        node = self._nodes.get(job)
        if node is None or node.state not in (WAITING, READY):
            raise ValueError(f"job {job} cannot fail in the DAG")
        node.state = DEAD
        blocked: list[int] = []
        todo = deque(node.children)
        nodes = self._nodes
        while todo:
            child = todo.popleft()
            cnode = nodes.get(child)
            if cnode is None or cnode.state not in (WAITING, READY):
                continue
            cnode.state = BLOCKED
            blocked.append(child)
            todo.extend(cnode.children)
        return blocked

    def reset(self, job: int) -> int:
        """Bring a DEAD or BLOCKED job back (replay); returns its new state.

        Unmet parents are counted afresh; a parent that was discarded counts
        as succeeded. It stays BLOCKED while a parent is DEAD or BLOCKED.
        """
        node = self._nodes.get(job)
        if node is None or node.state not in (DEAD, BLOCKED):
            raise ValueError(f"job {job} is not DEAD or BLOCKED")
        unmet = 0
        blocked = False
        for parent in node.parents:
            pnode = self._nodes.get(parent)
            if pnode is None or pnode.state == DONE:
                continue
            if pnode.state in (DEAD, BLOCKED):
                blocked = True
            else:
                unmet += 1
        node.unmet = unmet
        node.state = BLOCKED if blocked else (READY if unmet == 0 else WAITING)
        return node.state

    def discard(self, job: int) -> bool:
        """Forget a job (its run is finished); children keep their counts."""
        return self._nodes.pop(job, None) is not None
