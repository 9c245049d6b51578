"""Shared pytest fixtures: real redis-server / PostgreSQL / Chromium for the tests.

Servers are session-scoped and started lazily, only when a test asks for them.
Tests using them are auto-marked ``redis`` / ``postgres`` / ``browser`` so that
e.g. ``pytest -m 'not postgres'`` deselects them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import PostgresServer, RedisServer, start_postgres, start_redis

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.standins.fixtures"]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

_AUTO_MARKS = {"redis_server": "redis", "postgres_server": "postgres", "chromium_path": "browser"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, mark in _AUTO_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 shared by the session (``.url``, ``.port``, ``.restart()``)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL 15 cluster shared by the session (``.url``, ``.create_database(name)``)."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium for Playwright (``executable_path=``); skips if absent."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install chromium` (scripts/test does)")
    return CHROMIUM


# --- database fixtures (added by integrator) ---


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite database file (migrated on first use)."""
    from followup.db.session import dispose_engines

    yield f"sqlite:///{tmp_path}/followup.db"
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same data-layer test on SQLite and on PostgreSQL (a fresh database each)."""
    from followup.db.session import dispose_engines

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/followup.db"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    yield url
    dispose_engines()


def make_context(db_url: str, var_dir: Path, config: Path = REPO / "config" / "followup.yaml") -> Any:
    """An AppContext on the given database, with var/ (outbox, secret key) in ``var_dir``."""
    from followup.config.context import AppContext
    from followup.config.settings import Settings

    return AppContext(settings=Settings(database_url=db_url, var_dir=var_dir, config=config))
