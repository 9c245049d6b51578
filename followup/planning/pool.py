"""The talent pool's planner: pool members + the ``pool:`` policy + their pool touches + now → a plan.

Pure like :mod:`followup.planning.planner` (no clock, no I/O) and through the same calendar: each step
falls on ``anchor + at (+ k × every)`` while within ``stop_after`` of the anchor (the 不採用日 or 辞退日),
moves to the next business day at the preferred send time, and is created only between ``low`` and
``high`` (the tick's catch-up floor and horizon), so an old rejection imported late sends nothing.

Consent first (特定電子メール法): a step with ``consent: true`` goes only to a member whose consent was
recorded on or before its day; the rejection mail (``consent: false``) goes to every rejected candidate.
A pending pool touch is cancelled when its member leaves the pool (applied again and got an offer),
withdraws consent, or has no channel left (opted out). The key is
``external_id:pool:ANCHOR:step:k``: a second rejection (a new 不採用日) starts a new, separate series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from followup.calendar import BusinessCalendar
from followup.config.schema import PoolPolicy, PoolStep
from followup.durations import shift
from followup.planning.planner import PENDING_STATUSES, ExistingTouch, PlannedTouch, PlanResult
from followup.pool.rules import PoolMember, block_reason, is_pool_key
from followup.vocab import POOL_CADENCE

MAX_STEP_TOUCHES = 200  # a guard against a runaway ``every`` (1d over 18 months is 550)


@dataclass(frozen=True, slots=True)
class PoolSlot:
    """One step's touch for one member, before the channel is chosen."""

    suffix: str  # the key without the external id
    step: PoolStep
    seq: int
    nominal: date
    due_at: datetime


def member_slots(member: PoolMember, pool: PoolPolicy, calendar: BusinessCalendar) -> list[PoolSlot]:
    """The member's whole pool series: every step that applies to their status, within ``stop_after``."""
    if member.anchor is None or member.status not in pool.statuses:
        return []
    anchor = member.anchor
    last_day = shift(anchor, pool.stop_after)
    zone = calendar.zone(member.timezone)
    used: set[date] = set()
    found: list[tuple[date, int, int, PoolStep]] = []
    for s_index, step in enumerate(pool.steps):
        if member.status not in step.statuses:
            continue
        first = shift(anchor, step.at, is_business_day=calendar.is_business_day)
        for k in range(MAX_STEP_TOUCHES if step.every is not None else 1):
            nominal = (
                first
                if step.every is None
                else shift(first, step.every, k, is_business_day=calendar.is_business_day)
            )
            if nominal > last_day:
                break
            found.append((nominal, s_index, k, step))
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    slots: list[PoolSlot] = []
    for nominal, _s_index, k, step in found:
        day = calendar.next_business_day(nominal)
        while day in used:  # never two pool mails on one day
            day = calendar.next_business_day(day + timedelta(days=1))
        used.add(day)
        due_at, _ = calendar.moment(day, zone)
        suffix = f"{POOL_CADENCE}:{anchor.isoformat()}:{step.name}:{k}"
        slots.append(PoolSlot(suffix, step, k, nominal, due_at))
    return slots


def _describe(slot: PoolSlot) -> str:
    label = {"rejection": "選考結果のご連絡", "follow_up": "その後のご挨拶", "news": "近況・募集のご案内"}
    what = label.get(slot.step.name, slot.step.name)
    every = f"、{slot.step.every}ごと 第{slot.seq + 1}回" if slot.step.every is not None else ""
    return f"人材プール {what} (基準日 + {slot.step.at}{every})"


def plan_pool(
    members: Iterable[PoolMember],
    pool: PoolPolicy,
    existing: Mapping[int, Sequence[ExistingTouch]],
    *,
    low: datetime,
    high: datetime,
    calendar: BusinessCalendar,
) -> PlanResult:
    """What to create and cancel at this tick for the pool (``low``..``high`` as the main planner's)."""
    result = PlanResult()
    no_history: Sequence[ExistingTouch] = ()
    # members share series: most rejections of a season fall on a few days (computed once per date)
    series: dict[tuple[date | None, str, str | None], list[PoolSlot]] = {}
    for member in members:
        history = [t for t in existing.get(member.id, no_history) if is_pool_key(t.key)]
        pending = [t for t in history if t.status in PENDING_STATUSES]
        if not pool.enabled or member.status not in pool.statuses:
            reason = block_reason(pool, member.status, member.consent_date, "")
            result.cancel.extend((t.id, reason or "人材プールの対象外のため中止") for t in pending)
            continue
        channel = next((c for c in pool.channels if c in member.reachable), None)
        signature = (member.anchor, member.status, member.timezone)
        slots = series.get(signature)
        if slots is None:
            slots = series[signature] = member_slots(member, pool, calendar)
        wanted = {member.external_id + ":" + s.suffix: s for s in slots}
        for touch in pending:
            slot = wanted.get(touch.key)
            if slot is None:
                result.cancel.append((touch.id, "基準日の変更で予定から外れたため中止"))
            elif slot.step.consent and not _consented(member, slot):
                result.cancel.append((touch.id, "連絡への同意がないため中止"))
            elif channel is None:
                result.cancel.append((touch.id, "配信停止・連絡先なしのため中止"))
            elif touch.channel != channel:
                result.rechannel.append((touch.id, channel))
        keys = {t.key for t in history}
        unreachable = False
        for slot in slots:
            key = f"{member.external_id}:{slot.suffix}"
            if key in keys or not (low <= slot.due_at <= high):
                continue
            if slot.step.consent and not _consented(member, slot):
                continue  # no consent (yet): only the rejection mail goes
            if channel is None:
                if not unreachable:
                    result.skipped.append(
                        (member.id, "人材プール: 連絡できる手段がありません(配信停止・連絡先なし)")
                    )
                    unreachable = True
                continue
            result.create.append(
                PlannedTouch(
                    key=key,
                    holder_id=member.id,
                    cadence=POOL_CADENCE,
                    phase=slot.step.name,
                    seq=slot.seq,
                    kind="message",
                    channel=channel,
                    template=slot.step.template,
                    event=None,
                    survey_form=None,
                    due_at=slot.due_at,
                    reason=_describe(slot),
                )
            )
    return result


def _consented(member: PoolMember, slot: PoolSlot) -> bool:
    """Consent recorded on or before the step's day: nothing promotional goes out for a day before it."""
    return member.consent_date is not None and member.consent_date <= slot.due_at.date()


__all__ = ["PoolSlot", "member_slots", "plan_pool"]
