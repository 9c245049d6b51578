"""What every entry point needs: settings, the loaded policy, the database. Built once per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from followup.config import LoadedPolicy, Policy, load_policy
from followup.config.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass
class AppContext:
    settings: Settings = field(default_factory=get_settings)
    config_path: Path | None = None

    @property
    def config_file(self) -> Path:
        return self.config_path or self.settings.config

    @cached_property
    def loaded(self) -> LoadedPolicy:
        """The validated policy; raises ConfigError (exit 2 in the CLI) when the file is invalid."""
        return load_policy(self.config_file)

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def templates_root(self) -> Path:
        return self.loaded.templates_root

    @property
    def db_url(self) -> str:
        return self.settings.effective_database_url

    @contextmanager
    def session(self) -> Iterator[Session]:
        from followup.db.session import session_scope  # the ORM only for commands that use the database

        with session_scope(self.db_url) as session:
            yield session
