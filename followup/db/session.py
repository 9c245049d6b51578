"""Engines and sessions. A fresh database is created and migrated on first use (Alembic), so the
embedded default needs no setup step; production runs ``followup db upgrade`` explicitly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from followup.files import FILE_MODE, make_private, private_dir

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the newest schema."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def head_revision() -> str:
    """The newest migration's revision: each file is named after its revision (``0011_talent_pool.py``
    is revision ``0011``) and they chain in number order, so the head is the highest number.

    Read from the file names, not through Alembic: importing Alembic and parsing every script cost
    every command that opens the database most of a second (tests check this equals Alembic's head)."""
    names = (p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    return max(names)


def _is_current(engine: Engine) -> bool:
    """Whether the database is at the newest schema (a database without Alembic's table is not)."""
    with engine.connect() as connection:
        try:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except (OperationalError, ProgrammingError):
            return False
    return found == [head_revision()]


def _private_sqlite_file(path: Path) -> None:
    """The database holds personal data: a 0600 file in a 0700 folder. SQLite gives its -wal and -shm
    files the database file's mode. An existing file loses group/other access (best effort)."""
    if str(path) in ("", ":memory:"):
        return
    private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        make_private(f"{path}{suffix}")


def get_engine(url: str, *, migrate: bool = True) -> Engine:
    """One engine per URL for the process; creates the SQLite folder and migrates on first use."""
    if url in _engines:
        return _engines[url]
    if url.startswith("sqlite:///"):
        _private_sqlite_file(Path(url.removeprefix("sqlite:///")))
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # hide_parameters: an error message never carries a row's name or address
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if migrate and not _is_current(engine):
        upgrade(url)
    _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Forget pooled connections (after fork in a worker, and between tests)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error, always close."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
