"""Personal links in messages: survey and opt-out URLs carry a signed, expiring token, never a bare id.

itsdangerous signs ``{"t": touch_id}`` / ``{"h": holder_id, "c": channel}`` with the installation's
secret and a purpose-specific salt, so a survey token cannot be replayed as an opt-out token.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from followup.config.settings import Settings

SURVEY_SALT = "followup.survey"
OPT_OUT_SALT = "followup.opt-out"
OPT_OUT_MAX_AGE = 400 * 24 * 3600  # an opt-out link keeps working for the whole season
MANUAL_SALT = "followup.manual-done"
MANUAL_MAX_AGE = 90 * 24 * 3600  # a reminder's 「実施済みにする」 link: a season's quarter is plenty


class LinkExpired(Exception):
    """The signature is valid but too old: the page says so kindly."""


class LinkInvalid(Exception):
    """Forged or tampered: the page answers 403 and says nothing more."""


def secret_key(settings: Settings) -> str:
    """FOLLOWUP_SECRET_KEY, or a random key created once per installation under var/ (embedded use)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.var_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once agree on one key (the second reads the first's)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
    for _ in range(50):  # the creator may still be writing
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: delete it or set FOLLOWUP_SECRET_KEY")


@dataclass(frozen=True)
class LinkSigner:
    """Signs with ``secret``; also accepts links signed with ``previous`` keys (secret rotation)."""

    secret: str
    base_url: str
    previous: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        previous = tuple(k.strip() for k in settings.secret_key_previous.split(",") if k.strip())
        return cls(secret_key(settings), settings.base_url.rstrip("/"), previous)

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        # itsdangerous signs with the last key of the list and verifies with any of them
        return URLSafeTimedSerializer([*self.previous, self.secret], salt=salt)

    def survey_token(self, touch_id: int) -> str:
        return str(self._serializer(SURVEY_SALT).dumps({"t": touch_id}))

    def survey_url(self, touch_id: int) -> str:
        return f"{self.base_url}/s/{self.survey_token(touch_id)}"

    def opt_out_token(self, holder_id: int, channel: str) -> str:
        return str(self._serializer(OPT_OUT_SALT).dumps({"h": holder_id, "c": channel}))

    def opt_out_url(self, holder_id: int, channel: str) -> str:
        return f"{self.base_url}/opt-out/{self.opt_out_token(holder_id, channel)}"

    def manual_token(self, touch_id: int) -> str:
        return str(self._serializer(MANUAL_SALT).dumps({"m": touch_id}))

    def manual_url(self, touch_id: int) -> str:
        """The reminder's 「実施済みにする」 link: the assignee records the call without a CLI."""
        return f"{self.base_url}/done/{self.manual_token(touch_id)}"

    def read_manual_token(self, token: str) -> int:
        data = self._load(MANUAL_SALT, token, MANUAL_MAX_AGE)
        if not isinstance(data.get("m"), int):
            raise LinkInvalid()
        return int(data["m"])

    def _load(self, salt: str, token: str, max_age: int) -> dict[str, Any]:
        try:
            data = self._serializer(salt).loads(token, max_age=max_age)
        except SignatureExpired:
            raise LinkExpired() from None
        except BadSignature:
            raise LinkInvalid() from None
        if not isinstance(data, dict):
            raise LinkInvalid()
        return data

    def read_survey_token(self, token: str, max_age: int) -> int:
        """The touch id of a survey link no older than ``max_age`` seconds."""
        data = self._load(SURVEY_SALT, token, max_age)
        if not isinstance(data.get("t"), int):
            raise LinkInvalid()
        return int(data["t"])

    def read_opt_out_token(self, token: str) -> tuple[int, str]:
        data = self._load(OPT_OUT_SALT, token, OPT_OUT_MAX_AGE)
        if not isinstance(data.get("h"), int) or not isinstance(data.get("c"), str):
            raise LinkInvalid()
        return int(data["h"]), str(data["c"])
