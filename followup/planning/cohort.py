"""The cohort invitation message (内定者同士の交流, e.g. a LINE group's invitation URL): planned once for each
accepted holder of a track whose ``cohorts.<track>`` names a ``template`` and a ``line_group_url``.

It is an announcement the planner makes by itself: the same selection, channel choice and timing
(:mod:`followup.planning.announce`), named ``cohort-<track>``, so its key ``announce:cohort-<track>:<id>``
makes it once per holder and the weekly report counts it with the other announcements. A holder with no
reachable channel today is tried again on the next tick (HR may add a LINE id tomorrow).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.channels.base import resolve_env
from followup.config.schema import Policy
from followup.planning.announce import preview
from followup.planning.announce_store import load_candidates, plan_announcement
from followup.vocab import HolderStatus


def cohort_announcement(track: str) -> str:
    return f"cohort-{track}"


def plan_cohort_messages(session: Session, policy: Policy, now: datetime, calendar: BusinessCalendar) -> int:
    """Plan the invitation for accepted holders not planned before; returns how many were planned."""
    tracks = {
        track: cohort.template
        for track, cohort in policy.cohorts.items()
        if cohort.template and resolve_env(cohort.line_group_url)
    }
    planned = 0
    for track, template in tracks.items():
        assert template is not None
        name = cohort_announcement(track)
        accepted = HolderStatus.ACCEPTED.value
        candidates = load_candidates(session, policy, now, track=track, status=accepted, unplanned=name)
        if not candidates:
            continue  # everyone has it already: the usual tick reads no more than this one query
        filters = {"track": frozenset({track}), "status": frozenset({accepted})}
        result = preview(name, template, candidates, filters, now, calendar)
        planned += plan_announcement(session, result)
    return planned
