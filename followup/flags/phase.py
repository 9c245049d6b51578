"""Which cadence phase a holder is in on a given day: the one answer the rules, the weekly report and
the season simulation share. Pure: the policy, the holder's dates and ``today`` in, a name out.

It lives beside the rules (not in ``planning/``) because the simulation already depends on the rules;
keeping it here leaves the dependency one-way (planning → flags, report → flags).
"""

from __future__ import annotations

from datetime import date

from followup.config.schema import Policy


def current_phase(
    policy: Policy,
    cadence_name: str | None,
    dates: dict[str, date | None],
    today: date,
) -> str | None:
    """The cadence phase whose ``[from, to)`` contains ``today``; where phases overlap the later one
    wins (SPEC). None when no phase applies (before the offer, after the start, or an anchor the holder
    lacks, e.g. ``accepted`` before acceptance)."""
    if cadence_name is None or cadence_name not in policy.cadences:
        return None
    found: str | None = None
    for phase in policy.cadences[cadence_name].phases:
        begin, end = phase.start.resolve(dates), phase.end.resolve(dates)
        if begin is not None and end is not None and begin <= today < end:
            found = phase.name
    return found


def holder_phase(
    policy: Policy,
    *,
    track: str | None,
    department: str | None,
    offer_date: date,
    accepted_date: date | None,
    start_date: date,
    today: date,
) -> tuple[str | None, str | None]:
    """``(cadence, phase)`` for a holder on ``today``: the first cadence that applies to the holder's
    track and department (None if none does) and the phase of it that contains ``today``."""
    match = policy.cadence_for(track, department)
    cadence = match[0] if match else None
    dates = {"offer": offer_date, "accepted": accepted_date, "start": start_date}
    return cadence, current_phase(policy, cadence, dates, today)


__all__ = ["current_phase", "holder_phase"]
