"""``Idempotency-Key`` on writes: the same (tenant, path, key) replays the first answer.

The same key with a different body is ``IDEMPOTENCY_CONFLICT``. A request
that arrives while the first one with its key is still running waits for it
and replays its answer. Entries live ``ttl_ms`` (24 h by default) in memory,
within a byte budget (oldest answers go first past it); the job-level
``idempotencyKey`` is the durable dedupe across restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass

from ..errors import IdempotencyConflict, ValidationFailed

MAX_KEY_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class IdempotencyCache:
    def __init__(self, ttl_ms: int = 24 * 3600 * 1000, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.ttl_ms = ttl_ms
        self.max_bytes = max_bytes
        self.bytes = 0
        self._done: dict[tuple[str, str, str], tuple[bytes, Answer]] = {}
        self._running: dict[tuple[str, str, str], tuple[bytes, asyncio.Future[Answer | None]]] = {}
        self._expiry: deque[tuple[int, tuple[str, str, str]]] = deque()

    @staticmethod
    def check_key(key: str) -> None:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed(
                f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable characters"
            )

    async def lookup(self, slot: tuple[str, str, str], body: bytes, now_ms: int) -> Answer | None:
        """The remembered answer, or None when this request should run (and ``finish``)."""
        self._expire(now_ms)
        fingerprint = hashlib.sha256(body).digest()
        done = self._done.get(slot)
        if done is not None:
            if done[0] != fingerprint:
                raise IdempotencyConflict("Idempotency-Key was used with a different body")
            return done[1]
        running = self._running.get(slot)
        if running is not None:
            if running[0] != fingerprint:
                raise IdempotencyConflict("Idempotency-Key was used with a different body")
            answer = await asyncio.shield(running[1])
            # None: the first request failed without an answer to keep; run this one
            return answer if answer is not None else await self.lookup(slot, body, now_ms)
        self._running[slot] = (fingerprint, asyncio.get_running_loop().create_future())
        return None

    def finish(self, slot: tuple[str, str, str], answer: Answer | None, now_ms: int) -> None:
        """Record the answer (None: the request failed before answering, forget it)."""
        fingerprint, future = self._running.pop(slot)
        if answer is None or answer.status >= 500:
            future.set_result(None)
            return
        old = self._done.pop(slot, None)
        if old is not None:
            self.bytes -= len(old[1].body)
        self._done[slot] = (fingerprint, answer)
        self.bytes += len(answer.body)
        self._expiry.append((now_ms + self.ttl_ms, slot))
        future.set_result(answer)
        while self.bytes > self.max_bytes and self._expiry:
            self._forget(self._expiry.popleft()[1])

    def _expire(self, now_ms: int) -> None:
        while self._expiry and self._expiry[0][0] <= now_ms:
            self._forget(self._expiry.popleft()[1])

    def _forget(self, slot: tuple[str, str, str]) -> None:
        done = self._done.pop(slot, None)
        if done is not None:
            self.bytes -= len(done[1].body)
