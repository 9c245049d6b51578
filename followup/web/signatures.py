"""Webhook signatures, exactly as the providers compute them. Pure functions: the clock is an argument.

Slack (v0): ``"v0=" + hex(HMAC-SHA256(signing_secret, "v0:{timestamp}:{raw body}"))`` in
``X-Slack-Signature``, the timestamp in ``X-Slack-Request-Timestamp``; requests older or newer than
five minutes are refused so a captured request cannot be replayed.
LINE: ``base64(HMAC-SHA256(channel_secret, raw body))`` in ``X-Line-Signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SLACK_REPLAY_WINDOW = 300  # seconds


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify_slack(
    secret: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    window: int = SLACK_REPLAY_WINDOW,
) -> bool:
    """True only for a correctly signed request whose timestamp is within ``window`` seconds of ``now``."""
    if not secret or not timestamp or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > window:
        return False
    return hmac.compare_digest(slack_signature(secret, timestamp, body).encode(), signature.encode())


def line_signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_line(secret: str | None, signature: str | None, body: bytes) -> bool:
    if not secret or not signature:
        return False
    return hmac.compare_digest(line_signature(secret, body).encode(), signature.encode())
