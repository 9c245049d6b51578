"""``--now`` and ``--at`` options: ISO 8601; a naive value is read in the organisation's time zone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from followup.errors import Problem, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext


def parse_now(text: str | None, context: AppContext) -> datetime:
    """The moment the command acts at: ``text`` if given (for previews and tests), else the real clock."""
    tz = context.policy.organization.tz
    if text is None:
        return datetime.now(tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserInputError(
            Problem(
                Path("--now"), None, None, f"bad date-time {text!r} (ISO 8601, e.g. 2026-11-30T10:00+09:00)"
            )
        ) from None
    # always in the organisation's zone, so ``.date()`` is the local calendar day (e.g. an acceptance date)
    return moment.astimezone(tz) if moment.tzinfo else moment.replace(tzinfo=tz)
