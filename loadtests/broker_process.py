"""Start a broker as a subprocess for a load run, and read its CPU time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from broker.api.auth import KeySet


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime, stime, and cutime, cstime: the postmaster's reaped children are the
    # backends that exited, whose CPU would otherwise drop out of a Postgres total
    ticks = sum(int(field) for field in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (backends,
    WAL writer, checkpointer): the ledger's side of a run on a Postgres store."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):  # exited while we looked
            continue
    return total


class BrokerProcess:
    """``python -m broker serve`` on a free port with its own state directory."""

    def __init__(self, store: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="broker-load-"))
        self.port = free_port()
        self.store = store or f"sqlite:///{self.dir}/ledger.db"
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._keys: KeySet | None = None
        self._log = open(self.dir / "broker.log", "ab")  # noqa: SIM115 - kept for every restart

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start (or restart, on the same state directory and port) and wait for the port."""
        token_file = self.dir / "var" / "dev-token"
        token_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--port",
                str(self.port),
                "--store",
                self.store,
                "--var-dir",
                str(self.dir / "var"),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {(self.dir / 'broker.log').read_text()}")
            if token_file.exists():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise TimeoutError("broker did not start")

    def token(self) -> str:
        return (self.dir / "var" / "dev-token").read_text().strip()

    def mint(self, tenant: str, scopes: str = "orch:operate orch:worker") -> str:
        """A token for ``tenant``, signed with the key this broker verifies with.

        The same key as ``python -m broker token --var-dir DIR``: the broker's
        Ed25519 key file, or ``BROKER_JWT_HS256_SECRET`` when that is set."""
        from broker import config
        from broker.api.auth import issue_token

        if self._keys is None:
            flags = {"var_dir": str(self.dir / "var")}
            self._keys = config.load(flags, self.env).keys(create=False)
        return issue_token(self._keys, tenant, scopes, subject=f"load-{tenant}")

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        """Stop, then delete the state directory (ledger, keys, log)."""
        self.stop()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=120),
    )
