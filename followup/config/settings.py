"""Environment settings, read once. Secrets come from here (the environment), never from YAML."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_", extra="ignore")

    config: Path = Path("config/followup.yaml")
    database_url: str = ""  # empty: SQLite file under var/
    broker_url: str = ""  # empty: embedded, tasks run in-process
    base_url: str = "http://127.0.0.1:8000"
    dashboard_token: str = ""
    secret_key: str = ""  # signs survey links; empty: derived per installation under var/
    secret_key_previous: str = ""  # comma-separated old keys, still accepted while links age out
    var_dir: Path = Path("var")
    log_json: bool = False
    worker_name: str = Field(default="")
    # delivery: a claim older than this is taken back; retries back off exponentially
    claim_timeout: float = 300.0
    max_attempts: int = 8
    retry_base: float = 60.0
    retry_cap: float = 3600.0
    # seconds to wait for the relay's reply to the end of DATA (RFC 5321 4.5.3.2.6: 10 minutes); a reply
    # that does not come leaves the email in doubt (resent at most once, same Message-ID)
    smtp_data_timeout: float = 600.0
    # scheduler (workers.scheduler): seconds between dispatch runs; retries become due no sooner than this
    dispatch_interval: float = 60.0

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'followup.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
