"""Environment settings, read once. Secrets come from here (the environment), never from YAML."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from followup.errors import SettingsError

# The values shipped in .env.example are public: anyone could sign links or open the dashboard with
# them. tests/test_security_web.py checks that every secret in .env.example is listed here.
EXAMPLE_SECRETS = frozenset(
    {"change-me", "change-me-too", "change-me-to-a-long-random-string", "changeme", "secret"}
)
MIN_SECRET_LENGTH = 32
HOW_TO_MAKE_ONE = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_", extra="ignore")

    config: Path = Path("config/followup.yaml")
    database_url: str = ""  # empty: SQLite file under var/
    broker_url: str = ""  # empty: embedded, tasks run in-process
    base_url: str = "http://127.0.0.1:8000"
    dashboard_token: str = ""
    secret_key: str = ""  # signs survey links; empty: derived per installation under var/
    secret_key_previous: str = ""  # comma-separated old keys, still accepted while links age out
    # addresses or networks of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    trusted_proxies: str = ""
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

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        """A set secret must be long and not an example value; only an unset one falls back (embedded)."""
        problems: list[str] = []
        for name, value in (
            ("FOLLOWUP_SECRET_KEY", self.secret_key),
            ("FOLLOWUP_DASHBOARD_TOKEN", self.dashboard_token),
        ):
            if not value:
                continue
            if value.strip().lower() in EXAMPLE_SECRETS:
                problems.append(
                    f"{name} is the example value from .env.example, which is public; {HOW_TO_MAKE_ONE}"
                )
            elif len(value) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{name} is shorter than {MIN_SECRET_LENGTH} characters ({len(value)}); {HOW_TO_MAKE_ONE}"
                )
        for old in self.secret_key_previous.split(","):
            if old.strip().lower() in EXAMPLE_SECRETS:
                problems.append(
                    "FOLLOWUP_SECRET_KEY_PREVIOUS contains the example value from .env.example: "
                    "links signed with it can be forged by anyone; remove it"
                )
        for entry in (part.strip() for part in self.trusted_proxies.split(",")):
            try:
                if entry:
                    ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(
                    f"FOLLOWUP_TRUSTED_PROXIES: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                )
        if problems:
            raise SettingsError(problems)
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'followup.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
