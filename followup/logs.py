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
    (re.compile(r"\b[UW][A-Z0-9]{8,12}\b"), "<slack-user>"),
    (re.compile(r"\b0\d{1,4}-\d{1,4}-\d{3,4}\b"), "<phone>"),
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
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
