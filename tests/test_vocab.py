"""The one vocabulary: the enums spell exactly the strings the database, the YAML and the JSON use."""

from __future__ import annotations

from typing import get_args

from followup.config.schema import Severity as SeverityLiteral
from followup.config.schema import Weekday
from followup.labels import SEVERITY_LABELS, STATUS_LABELS
from followup.vocab import (
    ACTIVE_STATUSES,
    HOLDER_STATUSES,
    SEVERITIES,
    TOUCH_KINDS,
    TOUCH_STATUSES,
    WEEKDAYS,
    WEEKDAYS_JA,
    HolderStatus,
    TouchStatus,
)


def test_the_stored_strings_are_unchanged() -> None:
    assert HOLDER_STATUSES == ("offered", "accepted", "joined", "declined", "withdrawn", "rejected")
    assert ACTIVE_STATUSES == ("offered", "accepted")
    assert TOUCH_KINDS == ("message", "survey", "manual", "escalation")
    assert TOUCH_STATUSES == (
        "planned",
        "sending",
        "sent",
        "failed",
        "cancelled",
        "reminded",
        "done",
        "in_doubt",
    )
    assert all(type(value) is str for value in (*HOLDER_STATUSES, *TOUCH_STATUSES, *TOUCH_KINDS))


def test_enum_members_are_their_strings() -> None:
    assert HolderStatus.OFFERED == "offered" and f"{TouchStatus.SENT}" == "sent"
    assert "accepted" in ACTIVE_STATUSES and HolderStatus.ACCEPTED in ACTIVE_STATUSES


def test_the_policy_schema_and_the_labels_use_the_same_words() -> None:
    assert get_args(Weekday) == WEEKDAYS
    assert get_args(SeverityLiteral) == SEVERITIES
    assert tuple(STATUS_LABELS) == HOLDER_STATUSES
    assert tuple(SEVERITY_LABELS) == SEVERITIES
    assert len(WEEKDAYS_JA) == len(WEEKDAYS) == 7 and WEEKDAYS_JA[0] == "月"
