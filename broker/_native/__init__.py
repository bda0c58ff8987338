"""Hot structures of the broker: Cython kernels, each with a pure-Python twin.

Every kernel ``x`` exists twice with one API: ``x.pyx`` (compiled) and ``x_py.py``
(the twin, which is also the specification). The compiled one is used unless
``BROKER_NO_EXTENSIONS=1`` is set or it failed to build; a failed import is
reported loudly, never a silent slowdown. ``HAVE_NATIVE`` says which is in use.

The switch is read here, at import, as well as in ``setup.py`` at build time
(the way aiohttp treats ``AIOHTTP_NO_EXTENSIONS``); it is the one environment
variable read outside ``broker.config``, because it must act before anything
else is imported.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from types import ModuleType, SimpleNamespace

from .attempt_log_py import AttemptLog as AttemptLog
from .concurrency_py import ConcurrencyCounters as ConcurrencyCounters
from .copy_codec_py import CopyCodec as CopyCodec
from .dag_index_py import DagIndex as DagIndex
from .job_record_py import Job as Job
from .job_table_py import JobTable as JobTable
from .lease_table_py import LeaseTable as LeaseTable
from .ready_queues_py import ReadyQueues as ReadyQueues
from .sqlite_writer_py import SqliteWriter as SqliteWriter
from .timer_index_py import TimerIndex as TimerIndex
from .token_buckets_py import TokenBuckets as TokenBuckets
from .wire_py import Wire as Wire

log = logging.getLogger("broker.native")

#: kernel module name -> the class it exports
KERNELS: dict[str, str] = {
    "ready_queues": "ReadyQueues",
    "lease_table": "LeaseTable",
    "timer_index": "TimerIndex",
    "dag_index": "DagIndex",
    "token_buckets": "TokenBuckets",
    "concurrency": "ConcurrencyCounters",
    "job_record": "Job",
    "job_table": "JobTable",
    "wire": "Wire",
    "copy_codec": "CopyCodec",
    "attempt_log": "AttemptLog",
    "sqlite_writer": "SqliteWriter",
}

NO_EXTENSIONS = os.environ.get("BROKER_NO_EXTENSIONS", "") not in ("", "0")


def twin(name: str) -> ModuleType:
    """The pure-Python twin of kernel ``name``."""
    return importlib.import_module(f"{__name__}.{name}_py")


def native(name: str) -> ModuleType:
    """The compiled kernel ``name``; raises ImportError when it is not built."""
    return importlib.import_module(f"{__name__}.{name}")


def _load_native() -> dict[str, bool]:
    loaded: dict[str, bool] = {}
    for name, cls in KERNELS.items():
        loaded[name] = False
        if NO_EXTENSIONS:
            continue
        try:
            module = native(name)
        except ImportError as exc:
            message = (
                f"native kernel broker._native.{name} failed to import ({exc}); "
                "using the pure-Python twin, which is several times slower. "
                "Build it with `pip install -e .` or set BROKER_NO_EXTENSIONS=1."
            )
            log.error(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            continue
        globals()[cls] = getattr(module, cls)
        loaded[name] = True
    return loaded


#: kernel name -> True when the compiled kernel is in use
NATIVE_KERNELS: dict[str, bool] = _load_native()
#: True when every kernel is the compiled one
HAVE_NATIVE: bool = all(NATIVE_KERNELS.values())

__all__ = [
    "AttemptLog",
    "HAVE_NATIVE",
    "KERNELS",
    "NATIVE_KERNELS",
    "TWINS",
    "ConcurrencyCounters",
    "CopyCodec",
    "DagIndex",
    "Job",
    "JobTable",
    "LeaseTable",
    "ReadyQueues",
    "SqliteWriter",
    "TimerIndex",
    "TokenBuckets",
    "Wire",
    "native",
    "twin",
]


#: the pure-Python twins as one namespace, for running an engine on them
TWINS = SimpleNamespace(**{cls: getattr(twin(name), cls) for name, cls in KERNELS.items()})
