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
    "wire",
    "copy_codec",
    "attempt_log",
    "sqlite_writer",
]


def openssl_header() -> bool:
    """The wire kernel hashes payloads with OpenSSL when its header is here
    (libssl-dev); without it the kernel calls hashlib, a little slower."""
    import sysconfig

    roots = ["/usr/include", "/usr/local/include", sysconfig.get_paths()["include"]]
    return any(os.path.exists(os.path.join(root, "openssl", "sha.h")) for root in roots)


def sqlite_header() -> bool:
    """The SQLite writer kernel links libsqlite3 and needs its header
    (libsqlite3-dev); without it the kernel is not built and the twin, which
    writes through the sqlite3 module, is used (loudly, as any missing kernel)."""
    import sysconfig

    roots = ["/usr/include", "/usr/local/include", sysconfig.get_paths()["include"]]
    return any(os.path.exists(os.path.join(root, "sqlite3.h")) for root in roots)


def native_extensions() -> list:
    if NO_EXTENSIONS:
        return []
    from Cython.Build import cythonize

    openssl = openssl_header()
    kernels = KERNELS
    if not sqlite_header():
        print("setup.py: sqlite3.h not found (install libsqlite3-dev): the sqlite_writer "
              "kernel is not built, the SQLite ledger writes through its pure-Python twin")
        kernels = [k for k in KERNELS if k != "sqlite_writer"]
    extensions = [
        Extension(
            f"broker._native.{name}",
            [f"broker/_native/{name}.pyx"],
            language="c++",
            extra_compile_args=["-O2", "-std=c++17", "-Wno-deprecated-declarations"],
            include_dirs=["broker/_native"],
            define_macros=[("BROKER_OPENSSL", "1")] if openssl and name == "wire" else [],
            libraries=(["crypto"] if openssl and name == "wire" else [])
            + (["sqlite3"] if name == "sqlite_writer" else []),
        )
        for name in kernels
    ]
    # binding=False: methods are plain C method descriptors, not Cython function
    # objects; a call skips the function object's own dispatch (about 85 fewer
    # instructions per call under callgrind, 4-5 % of a batch-1 call from a loop)
    return cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "binding": False,
            # signatures in the form inspect.signature() reads from a C method
            "embedsignature": True,
            "embedsignature.format": "clinic",
        },
    )


setup(ext_modules=native_extensions())
