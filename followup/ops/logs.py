"""Logging for operators: plain or JSON lines (FOLLOWUP_LOG_JSON), and never any personal data.

Every record passes through :class:`PersonalDataFilter`, which masks e-mail addresses, LINE and Slack
user ids and phone numbers in the message and its arguments, so a log shipped to a vendor carries no
PII (個人情報保護法). Names cannot be recognised reliably, so code logs holder ids, never names.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_PATTERNS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\bU[0-9a-f]{32}\b"), "<line-user>"),
    (re.compile(r"\b[UW](?=[A-Z]*\d)[A-Z0-9]{8,12}\b"), "<slack-user>"),
    (re.compile(r"\b0\d{1,4}-\d{1,4}-\d{3,4}\b"), "<phone>"),
    # signed links and login tokens in request paths (uvicorn's access log)
    (re.compile(r"(/s/|/opt-out/)[\w.-]{20,}"), r"\1<token>"),
    (re.compile(r"([?&]token=)[^&\s\"]+"), r"\1<token>"),
)


def mask(text: str) -> str:
    """``text`` with e-mail addresses, LINE/Slack user ids and phone numbers replaced by placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


class PersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        return True


class MaskingFormatter(logging.Formatter):
    """Plain lines; tracebacks masked too (an exception message can quote an address)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, json_lines: bool = False, level: int = logging.INFO) -> None:
    """Install one handler on the root logger with the PII filter (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_followup", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._followup = True  # type: ignore[attr-defined]
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(_formatter(json_lines))
    root.addHandler(handler)
    root.setLevel(level)


def _formatter(json_lines: bool) -> logging.Formatter:
    if json_lines:
        return JsonFormatter()
    return MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def protect_handlers(logger: logging.Logger, *, json_lines: bool = False) -> None:
    """Add the PII filter (and the chosen format) to handlers a framework set up itself (Celery)."""
    for handler in logger.handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
        handler.setFormatter(_formatter(json_lines))
