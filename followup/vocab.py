"""The words the code and the database share: holder and touch statuses, touch kinds, severities,
weekdays. One definition each; every module imports them from here.

The enums are ``StrEnum``: a member *is* its string (``HolderStatus.OFFERED == "offered"``), so rows
written before this module existed, YAML values and JSON output keep exactly the same spelling. The
tuples below hold the plain ``str`` values, for SQL ``IN (…)`` clauses and help texts where a driver
or a reader should see nothing but text. (Channel names come from the channel registry, delivery
outcomes from the delivery package; they are not repeated here.)
"""

from __future__ import annotations

from enum import StrEnum


class HolderStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    JOINED = "joined"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"  # 不採用: never had an offer; may belong to the talent pool (followup.pool)


class TouchStatus(StrEnum):
    """planned → sending → sent | failed | in_doubt; planned → cancelled; manual: planned → reminded → done.

    ``in_doubt``: the provider may have accepted the message but we could not learn it, and resending
    is no longer safe (an email already resent once with the same Message-ID): HR checks by hand.
    """

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REMINDED = "reminded"
    DONE = "done"
    IN_DOUBT = "in_doubt"


class TouchKind(StrEnum):
    MESSAGE = "message"
    SURVEY = "survey"
    MANUAL = "manual"
    # a second mail to the assignee of a manual touch reminded but not logged (manual_overdue)
    ESCALATION = "escalation"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


HOLDER_STATUSES: tuple[str, ...] = tuple(s.value for s in HolderStatus)
# follow-up runs while a holder has an offer and has not started; joined/declined/withdrawn end it
ACTIVE_STATUSES: tuple[str, ...] = (HolderStatus.OFFERED.value, HolderStatus.ACCEPTED.value)
# the talent pool (人材プール): people not hired who may hear from us again, with consent (followup.pool)
POOL_STATUSES: tuple[str, ...] = (HolderStatus.REJECTED.value, HolderStatus.DECLINED.value)
# the cadence name (second part of the touch key) of pool touches: never a cadence of the policy
POOL_CADENCE = "pool"
TOUCH_STATUSES: tuple[str, ...] = tuple(s.value for s in TouchStatus)
TOUCH_KINDS: tuple[str, ...] = tuple(k.value for k in TouchKind)
SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
# a sent message/survey or a completed manual touch: the touches that count as contact
DELIVERED_TOUCH_STATUSES: tuple[str, ...] = (TouchStatus.SENT.value, TouchStatus.DONE.value)

# ``date.weekday()`` order: index 0 is Monday. The names are the policy's (``workdays``, ``report.day``);
# the Japanese string is what templates and the report print, e.g. 4月1日(水).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS_JA = "月火水木金土日"

__all__ = [
    "ACTIVE_STATUSES",
    "DELIVERED_TOUCH_STATUSES",
    "HOLDER_STATUSES",
    "POOL_CADENCE",
    "POOL_STATUSES",
    "SEVERITIES",
    "TOUCH_KINDS",
    "TOUCH_STATUSES",
    "WEEKDAYS",
    "WEEKDAYS_JA",
    "HolderStatus",
    "Severity",
    "TouchKind",
    "TouchStatus",
]
