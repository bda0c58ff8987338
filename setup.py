"""Build the optional Cython kernels.

Every kernel in ``broker/_native`` has a pure-Python twin (``x_py.py``) with the
same API. Setting ``BROKER_NO_EXTENSIONS=1`` skips this build entirely, and the
same variable forces the twins at import time (see ``broker/_native/__init__.py``).
"""

import os

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("BROKER_NO_EXTENSIONS", "") not in ("", "0")

KERNELS = [
    "ready_queues",
    "lease_table",
    "timer_index",
    "dag_index",
    "token_buckets",
    "concurrency",
    "job_record",
    "job_table",
]


def native_extensions() -> list:
    if NO_EXTENSIONS:
        return []
    from Cython.Build import cythonize

    extensions = [
        Extension(
            f"broker._native.{name}",
            [f"broker/_native/{name}.pyx"],
            language="c++",
            extra_compile_args=["-O2", "-std=c++17"],
        )
        for name in KERNELS
    ]
    return cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
    )


setup(ext_modules=native_extensions())
