"""The database edge of announcements (一斉配信): candidates in bulk, the keys an earlier run planned, and
the touches themselves (INSERT … ON CONFLICT DO NOTHING on the unique key, so a re-run adds nothing).

Each touch carries the holder's cadence and current phase, so delivery's fallback walks the same channel
list the preview used; the planner leaves it alone (its key is not one of the cadence's).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.channels import MESSAGE_CHANNELS
from followup.config.schema import Policy
from followup.db.addresses import address_columns, addresses_of
from followup.db.models import ChannelOptOut, OfferHolder, Touch
from followup.flags.phase import holder_phase
from followup.planning.announce import ANNOUNCE_PHASE, Candidate, Preview
from followup.planning.inserts import insert_touches
from followup.vocab import ACTIVE_STATUSES, TouchKind, TouchStatus


def load_candidates(
    session: Session,
    policy: Policy,
    now: datetime,
    *,
    track: str | None = None,
    status: str | None = None,
    unplanned: str | None = None,
) -> list[Candidate]:
    """Every active, not erased holder (of ``track`` / ``status`` when given; without a touch of the
    announcement ``unplanned`` yet) with their reachable channels and their phase's channel order (two
    queries; phases worked out once per distinct season)."""
    opted: dict[int, set[str]] = defaultdict(set)
    for holder_id, channel in session.execute(select(ChannelOptOut.holder_id, ChannelOptOut.channel)):
        opted[holder_id].add(channel)
    today = now.astimezone(policy.organization.tz).date()
    seasons: dict[tuple[Any, ...], tuple[str | None, str | None, tuple[str, ...]]] = {}
    found = []
    for row in session.execute(
        select(
            OfferHolder.id,
            OfferHolder.external_id,
            OfferHolder.name,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.status,
            OfferHolder.offer_date,
            OfferHolder.accepted_date,
            OfferHolder.start_date,
            OfferHolder.timezone,
            *address_columns(),
        ).where(
            OfferHolder.status.in_(sorted(ACTIVE_STATUSES) if status is None else [status]),
            OfferHolder.erased_at.is_(None),
            *((OfferHolder.track == track,) if track is not None else ()),
            *(
                (OfferHolder.id.not_in(select(Touch.holder_id).where(_of_announcement(unplanned))),)
                if unplanned is not None
                else ()
            ),
        )
    ):
        season = (row.track, row.department, row.offer_date, row.accepted_date, row.start_date)
        known = seasons.get(season)
        if known is None:
            cadence, phase = holder_phase(
                policy,
                track=row.track,
                department=row.department,
                offer_date=row.offer_date,
                accepted_date=row.accepted_date,
                start_date=row.start_date,
                today=today,
            )
            known = seasons[season] = (cadence, phase, _preference(policy, cadence, phase))
        cadence, phase, preference = known
        contact = frozenset(c for c, v in addresses_of(row).items() if v)
        found.append(
            Candidate(
                id=row.id,
                external_id=row.external_id,
                name=row.name,
                track=row.track,
                department=row.department,
                status=row.status,
                reachable=contact - opted.get(row.id, set()),
                preference=preference,
                cadence=cadence,
                phase=phase,
                timezone=row.timezone,
                essential_reachable=contact,
            )
        )
    return found


def _preference(policy: Policy, cadence: str | None, phase: str | None) -> tuple[str, ...]:
    """The current phase's channels (delivery falls back along them), else every message channel."""
    if cadence is not None:
        for p in policy.cadences[cadence].phases:
            if p.name == phase:
                return tuple(p.channels)
    return tuple(MESSAGE_CHANNELS)


def _of_announcement(name: str) -> Any:
    return Touch.key.startswith(f"announce:{name}:", autoescape=True)


def planned_keys(session: Session, name: str) -> frozenset[str]:
    """The keys an earlier run of announcement ``name`` planned (whatever became of them)."""
    return frozenset(session.scalars(select(Touch.key).where(_of_announcement(name))))


def plan_announcement(session: Session, preview: Preview) -> int:
    """One touch per reachable recipient not planned before; returns how many the database took."""
    rows = [
        {
            "key": r.key,
            "holder_id": r.candidate.id,
            # the holder's cadence and phase: delivery's channel fallback follows that phase's list
            "cadence": r.candidate.cadence or ANNOUNCE_PHASE,
            "phase": r.candidate.phase or ANNOUNCE_PHASE,
            "seq": 0,
            "kind": TouchKind.MESSAGE.value,
            "channel": r.channel,
            "template": preview.template,
            "event": None,
            "survey_form": None,
            "due_at": r.due_at,
            "status": TouchStatus.PLANNED.value,
            "note": f"一斉配信 {preview.name}",
        }
        for r in preview.to_plan
    ]
    return insert_touches(session, rows)
