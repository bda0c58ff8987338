"""StellaOps Source & Job Orchestrator broker."""

from ._native import HAVE_NATIVE, NATIVE_KERNELS

__version__ = "0.1.0"
__all__ = ["HAVE_NATIVE", "NATIVE_KERNELS", "__version__"]
