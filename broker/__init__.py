"""StellaOps Source & Job Orchestrator broker.

``HAVE_NATIVE`` and ``NATIVE_KERNELS`` are resolved lazily, so that importing a
client-side module (``broker.sdk``) never loads the server's native kernels.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["HAVE_NATIVE", "NATIVE_KERNELS", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("HAVE_NATIVE", "NATIVE_KERNELS"):
        from . import _native

        return getattr(_native, name)
    raise AttributeError(f"module 'broker' has no attribute {name!r}")
