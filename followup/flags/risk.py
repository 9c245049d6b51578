"""Risk ordering: which holder HR should look at first, and in which order a holder's flags are
listed. One definition for the CLI (``followup flags``), the weekly report and the dashboard.

* A holder's risk is the sum of their open flags' severity weights (low 1, medium 3, high 5): a high
  flag outweighs a medium plus a low one, and two medium flags (6) outrank one high (5), because two
  independent warning signs about one holder are worth a look before a single strong one.
* Holders: riskiest first, then by external id (stable, and the order HR's spreadsheet has).
* Flags of one holder: most severe first, then in :data:`RULE_ORDER`; a rule not listed there (a new
  one) comes after the listed ones, an unknown severity after ``low``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from followup.vocab import Severity

RULE_ORDER: tuple[str, ...] = (
    "declining_signal",
    "low_pulse",
    "neglected",
    "unreachable",
    "acceptance_pending",
    "manual_overdue",
    "pulse_drop",
    "unresponsive",
    "over_contacted",
    "event_absent",
    "task_overdue",
    "no_rsvp",
    "cohort_not_joined",
    "no_cadence",
)
SEVERITY_WEIGHTS: dict[str, int] = {Severity.LOW.value: 1, Severity.MEDIUM.value: 3, Severity.HIGH.value: 5}
_RULE_INDEX = {rule: i for i, rule in enumerate(RULE_ORDER)}
_UNLISTED = len(RULE_ORDER)


class Flagged(Protocol):
    """Anything with a rule and a severity: a FlagDecision, a ``flags`` row, a report row."""

    @property
    def rule(self) -> str: ...

    @property
    def severity(self) -> str: ...


F = TypeVar("F", bound=Flagged)


def risk_score(flags: Iterable[Flagged] | Iterable[str]) -> int:
    """Sum of severity weights (low 1, medium 3, high 5) over a holder's open flags (or severities)."""
    total = 0
    for flag in flags:
        severity = flag if isinstance(flag, str) else flag.severity
        total += SEVERITY_WEIGHTS.get(severity, 0)
    return total


def flag_order(flag: Flagged) -> tuple[int, int]:
    """Sort key for one holder's flags: most severe first, then rule order."""
    return (-SEVERITY_WEIGHTS.get(flag.severity, 0), _RULE_INDEX.get(flag.rule, _UNLISTED))


def sort_flags(flags: Iterable[F]) -> list[F]:
    """One holder's flags in display order."""
    return sorted(flags, key=flag_order)


def holder_order(risk: int, external_id: str) -> tuple[int, str]:
    """Sort key for holders: riskiest first, then by external id."""
    return (-risk, external_id)


__all__ = [
    "RULE_ORDER",
    "SEVERITY_WEIGHTS",
    "Flagged",
    "flag_order",
    "holder_order",
    "risk_score",
    "sort_flags",
]
