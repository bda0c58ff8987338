"""Configuration: flags beat the environment, which beats the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import Config, load


def test_defaults() -> None:
    config = load({}, env={})
    assert config == Config()
    assert config.key_file == Path("var/jwt-ed25519.pem")


def test_environment_then_flags() -> None:
    env = {"BROKER_PORT": "9000", "BROKER_STORE": "sqlite:///x.db", "BROKER_MAX_BACKLOG": "7",
           "BROKER_SQLITE_SYNCHRONOUS": "NORMAL", "BROKER_RETRY_BASE_MS": "20"}  # fmt: skip
    from_env = load({}, env=env)
    assert (from_env.port, from_env.store, from_env.service.max_backlog) == (
        9000,
        "sqlite:///x.db",
        7,
    )
    assert from_env.sqlite_synchronous == "NORMAL"
    assert from_env.service.engine.retry_base_ms == 20
    flagged = load({"port": 9100, "store": "memory://", "max_backlog": None}, env=env)
    assert (flagged.port, flagged.store, flagged.service.max_backlog) == (9100, "memory://", 7)


def test_a_bad_number_in_the_environment_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="BROKER_PORT must be an integer"):
        load({}, env={"BROKER_PORT": "eighty"})
