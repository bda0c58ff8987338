"""Client SDK for the broker's HTTP API: submit jobs, run workers.

It speaks the published HTTP contract only and imports nothing from the
server side, so it works against any deployment (and could ship alone).

    async with Producer(url, token) as producer:
        job = await producer.submit_one("scan", {"image": "..."})

    worker = Worker(url, token, "runner-7", ["scan"], handle, concurrency=32)
    worker.install_signal_handlers()
    await worker.run()
"""

from .client import ApiError, Client, RetryPolicy
from .outcomes import NonRetryable, RetryAfter
from .producer import Producer
from .worker import Handler, Worker

__all__ = [
    "ApiError",
    "Client",
    "Handler",
    "NonRetryable",
    "Producer",
    "RetryAfter",
    "RetryPolicy",
    "Worker",
]
