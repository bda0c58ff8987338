"""Configuration, parsed once into frozen dataclasses: flags > environment > defaults.

This is the only module that reads the environment (apart from the
``BROKER_NO_EXTENSIONS`` switch, which acts at import time).

| setting | flag | environment | default |
| --- | --- | --- | --- |
| listen host | ``--host`` | ``BROKER_HOST`` | ``127.0.0.1`` |
| listen port | ``--port`` | ``BROKER_PORT`` | ``8080`` |
| ledger | ``--store`` | ``BROKER_STORE`` | ``sqlite:///var/ledger.db`` |
| state directory (keys, dev token) | ``--var-dir`` | ``BROKER_VAR_DIR`` | ``./var`` |
| SQLite ``synchronous`` (FULL or NORMAL) | | ``BROKER_SQLITE_SYNCHRONOUS`` | ``FULL`` |
| HS256 secret instead of the Ed25519 key file | | ``BROKER_JWT_HS256_SECRET`` | unset |
| Ed25519 public key (PEM) to verify with | | ``BROKER_JWT_PUBLIC_KEY`` | unset |
| flush backlog bound (rows) | ``--max-backlog`` | ``BROKER_MAX_BACKLOG`` | 200000 |
| retry backoff base (ms) | | ``BROKER_RETRY_BASE_MS`` | 1000 |
| retry backoff cap (ms) | | ``BROKER_RETRY_CAP_MS`` | 600000 |
| finished jobs kept (days; 0: for ever) | | ``BROKER_RETENTION_DAYS`` | 7 |
| unfinished jobs per tenant (429 past it; 0: no limit) | | ``BROKER_MAX_LIVE_PER_TENANT`` | 0 |
| unfinished jobs in all (429 past it; 0: no limit) | | ``BROKER_MAX_LIVE`` | 0 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .api.app import ApiSettings
from .api.auth import KeySet
from .engine import EngineSettings
from .service import ServiceSettings


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "sqlite:///var/ledger.db"
    var_dir: Path = Path("var")
    # FULL: an answered commit survives power loss; NORMAL: it survives a crash of the
    # process (the OS may lose the last commits on power loss), at a fraction of the cost
    sqlite_synchronous: str = "FULL"
    hs256_secret: str | None = None
    public_key_file: Path | None = None
    service: ServiceSettings = field(default_factory=ServiceSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    @property
    def key_file(self) -> Path:
        return self.var_dir / "jwt-ed25519.pem"

    @property
    def dev_token_file(self) -> Path:
        return self.var_dir / "dev-token"

    def keys(self, create: bool) -> KeySet:
        """The key set tokens are verified with; the local Ed25519 key by default."""
        if self.hs256_secret:
            return KeySet.hs256(self.hs256_secret.encode())
        if self.public_key_file is not None:
            return KeySet.ed25519_public(self.public_key_file.read_bytes())
        return KeySet.ed25519_file(self.key_file, create=create)


def load(flags: Mapping[str, object], env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from parsed flags (None = not given) and the environment."""
    env = os.environ if env is None else env

    def text(flag: str, var: str, default: str) -> str:
        value = flags.get(flag) if flag else None
        if value is not None:
            return str(value)
        return env.get(var) or default

    def number(flag: str, var: str, default: int) -> int:
        value = flags.get(flag) if flag else None
        if value is not None:
            return int(str(value))
        raw = env.get(var)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise SystemExit(f"{var} must be an integer, not {raw!r}") from None

    defaults = Config()
    engine_defaults = EngineSettings()
    public_key = env.get("BROKER_JWT_PUBLIC_KEY")
    return Config(
        host=text("host", "BROKER_HOST", defaults.host),
        port=number("port", "BROKER_PORT", defaults.port),
        store=text("store", "BROKER_STORE", defaults.store),
        var_dir=Path(text("var_dir", "BROKER_VAR_DIR", str(defaults.var_dir))),
        sqlite_synchronous=text("", "BROKER_SQLITE_SYNCHRONOUS", defaults.sqlite_synchronous),
        hs256_secret=env.get("BROKER_JWT_HS256_SECRET") or None,
        public_key_file=Path(public_key) if public_key else None,
        service=ServiceSettings(
            engine=EngineSettings(
                retry_base_ms=number("", "BROKER_RETRY_BASE_MS", engine_defaults.retry_base_ms),
                retry_cap_ms=number("", "BROKER_RETRY_CAP_MS", engine_defaults.retry_cap_ms),
            ),
            max_backlog=number("max_backlog", "BROKER_MAX_BACKLOG", 200_000),
            retention_ms=number("", "BROKER_RETENTION_DAYS", 7) * 86_400_000,
            max_live_per_tenant=number("", "BROKER_MAX_LIVE_PER_TENANT", 0),
            max_live=number("", "BROKER_MAX_LIVE", 0),
        ),
    )
