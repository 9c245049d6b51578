"""Personal links in messages: survey and opt-out URLs carry a signed, expiring token, never a bare id.

itsdangerous signs ``{"s": SEALED}`` / ``{"o": SEALED, "c": channel}`` with the installation's
secret and a purpose-specific salt, so a survey token cannot be replayed as an opt-out token. The
touch or holder id inside is sealed (a nonce and the id XORed with an HMAC of the nonce under a key
derived from the secret): a token reveals no sequential id.
Tokens of the earlier format (``{"t": 17}``, ``{"h": 3, "c": "email"}``) are still read while they
age out: they are signed with the same key, so they cannot be forged either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from followup.config.settings import Settings
from followup.files import private_dir

SURVEY_SALT = "followup.survey"
OPT_OUT_SALT = "followup.opt-out"
OPT_OUT_MAX_AGE = 400 * 24 * 3600  # an opt-out link keeps working for the whole season
MANUAL_SALT = "followup.manual-done"
MANUAL_MAX_AGE = 90 * 24 * 3600  # a reminder's 「実施済みにする」 link: a season's quarter is plenty
RSVP_SALT = "followup.rsvp"
RSVP_MAX_AGE = 400 * 24 * 3600  # an RSVP link works until the event (the page refuses late answers)
MENTOR_SALT = "followup.mentor-sign-in"
MENTOR_MAX_AGE = 14 * 24 * 3600  # a mentor's sign-in link (mailed by `followup workspace invite`): two weeks
POOL_SALT = "followup.pool"
GO_SALT = "followup.go"
POOL_MAX_AGE = 600 * 24 * 3600  # the talent pool's links work for its whole span (stop_after: 18mo)


_NONCE = 8


def _pad(key: str, salt: str, nonce: bytes) -> int:
    digest = hmac.new(key.encode("utf-8"), f"followup.link-id:{salt}:".encode() + nonce, hashlib.sha256)
    return int.from_bytes(digest.digest()[:8], "big")


def seal_id(key: str, salt: str, number: int) -> str:
    """``number`` (0 ≤ n < 2**64) as an opaque string; only holders of ``key`` can read it.

    The nonce is derived from the id (a synthetic IV), so one touch always gets the same sealed id and
    a re-rendered message is byte-identical within the same second; ids 17 and 18 look unrelated.
    """
    nonce = hmac.new(
        key.encode("utf-8"), f"followup.link-iv:{salt}:{number}".encode(), hashlib.sha256
    ).digest()[:_NONCE]
    body = (number ^ _pad(key, salt, nonce)).to_bytes(8, "big")
    return base64.urlsafe_b64encode(nonce + body).decode("ascii").rstrip("=")


def open_id(key: str, salt: str, sealed: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _NONCE + 8:
        return None
    nonce, body = raw[:_NONCE], raw[_NONCE:]
    return int.from_bytes(body, "big") ^ _pad(key, salt, nonce)


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
        private_dir(path.parent)
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

    def _serializer(self, salt: str, key: str | None = None) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(key or self.secret, salt=salt)

    def survey_token(self, touch_id: int) -> str:
        sealed = seal_id(self.secret, SURVEY_SALT, touch_id)
        return str(self._serializer(SURVEY_SALT).dumps({"s": sealed}))

    def survey_url(self, touch_id: int) -> str:
        return f"{self.base_url}/s/{self.survey_token(touch_id)}"

    def opt_out_token(self, holder_id: int, channel: str) -> str:
        sealed = seal_id(self.secret, OPT_OUT_SALT, holder_id)
        return str(self._serializer(OPT_OUT_SALT).dumps({"o": sealed, "c": channel}))

    def opt_out_url(self, holder_id: int, channel: str) -> str:
        return f"{self.base_url}/opt-out/{self.opt_out_token(holder_id, channel)}"

    def manual_token(self, touch_id: int) -> str:
        sealed = seal_id(self.secret, MANUAL_SALT, touch_id)
        return str(self._serializer(MANUAL_SALT).dumps({"d": sealed}))

    def manual_url(self, touch_id: int) -> str:
        """The reminder's 「実施済みにする」 link: the assignee records the call without a CLI."""
        return f"{self.base_url}/done/{self.manual_token(touch_id)}"

    def read_manual_token(self, token: str) -> int:
        data, key = self._load(MANUAL_SALT, token, MANUAL_MAX_AGE)
        return self._id(data, "d", "m", MANUAL_SALT, key)

    def rsvp_token(self, holder_id: int, event: str) -> str:
        """A holder's answer link for one event: ``{"r": SEALED holder id, "e": event name}``."""
        sealed = seal_id(self.secret, RSVP_SALT, holder_id)
        return str(self._serializer(RSVP_SALT).dumps({"r": sealed, "e": event}))

    def rsvp_url(self, holder_id: int, event: str) -> str:
        return f"{self.base_url}/e/{self.rsvp_token(holder_id, event)}"

    def read_rsvp_token(self, token: str) -> tuple[int, str]:
        """(holder id, event name) of an RSVP link."""
        data, key = self._load(RSVP_SALT, token, RSVP_MAX_AGE)
        if not isinstance(data.get("e"), str) or not isinstance(data.get("r"), str):
            raise LinkInvalid()
        return self._id(data, "r", "-", RSVP_SALT, key), str(data["e"])

    def mentor_token(self, email: str) -> str:
        """A mentor's or an executive's sign-in link to the workspace: their own holders only."""
        return str(self._serializer(MENTOR_SALT).dumps({"w": email}))

    def mentor_url(self, email: str) -> str:
        return f"{self.base_url}/m/{self.mentor_token(email)}"

    def read_mentor_token(self, token: str) -> str:
        data, _ = self._load(MENTOR_SALT, token, MENTOR_MAX_AGE)
        if not isinstance(data.get("w"), str) or not data["w"]:
            raise LinkInvalid()
        return str(data["w"])

    def pool_token(self, holder_id: int) -> str:
        """The rejection mail's page (/r/TOKEN): thanks, and the checkbox that records consent."""
        sealed = seal_id(self.secret, POOL_SALT, holder_id)
        return str(self._serializer(POOL_SALT).dumps({"p": sealed}))

    def pool_url(self, holder_id: int) -> str:
        return f"{self.base_url}/r/{self.pool_token(holder_id)}"

    def read_pool_token(self, token: str) -> int:
        data, key = self._load(POOL_SALT, token, POOL_MAX_AGE)
        return self._id(data, "p", "-", POOL_SALT, key)

    def go_token(self, holder_id: int, link: str) -> str:
        """A counted redirect (/go/TOKEN) to a configured link: the third party sees no personal data."""
        sealed = seal_id(self.secret, GO_SALT, holder_id)
        return str(self._serializer(GO_SALT).dumps({"g": sealed, "l": link}))

    def go_url(self, holder_id: int, link: str) -> str:
        return f"{self.base_url}/go/{self.go_token(holder_id, link)}"

    def read_go_token(self, token: str) -> tuple[int, str]:
        """(holder id, link name) of a counted redirect."""
        data, key = self._load(GO_SALT, token, POOL_MAX_AGE)
        if not isinstance(data.get("l"), str):
            raise LinkInvalid()
        return self._id(data, "g", "-", GO_SALT, key), str(data["l"])

    def _load(self, salt: str, token: str, max_age: int) -> tuple[dict[str, Any], str]:
        """The payload and the key that signed it (the current one, or a previous one being rotated out)."""
        if len(token) > 1024:
            raise LinkInvalid()
        for key in (self.secret, *self.previous):
            try:
                data = self._serializer(salt, key).loads(token, max_age=max_age)
            except SignatureExpired:
                raise LinkExpired() from None  # raised only once the signature checked out
            except BadSignature:
                continue
            if not isinstance(data, dict):
                raise LinkInvalid()
            return data, key
        raise LinkInvalid()

    @staticmethod
    def _id(data: dict[str, Any], sealed_key: str, old_key: str, salt: str, key: str) -> int:
        sealed = data.get(sealed_key)
        if isinstance(sealed, str):
            number = open_id(key, salt, sealed)
        elif isinstance(data.get(old_key), int) and not isinstance(data.get(old_key), bool):
            number = int(data[old_key])  # the earlier format, still signed by our key
        else:
            number = None
        if number is None:
            raise LinkInvalid()
        return number

    def read_survey_token(self, token: str, max_age: int) -> int:
        """The touch id of a survey link no older than ``max_age`` seconds."""
        data, key = self._load(SURVEY_SALT, token, max_age)
        return self._id(data, "s", "t", SURVEY_SALT, key)

    def read_opt_out_token(self, token: str) -> tuple[int, str]:
        data, key = self._load(OPT_OUT_SALT, token, OPT_OUT_MAX_AGE)
        if not isinstance(data.get("c"), str):
            raise LinkInvalid()
        return self._id(data, "o", "h", OPT_OUT_SALT, key), str(data["c"])
