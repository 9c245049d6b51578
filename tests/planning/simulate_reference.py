"""The straightforward flag observer as it was before issue 18: every holder, every report, all rules.

Kept as the reference the cached ``FlagTimeline`` must agree with (tests and the benchmark)."""

from __future__ import annotations

from datetime import datetime

from followup.config.schema import Policy
from followup.flags.phase import holder_phase
from followup.flags.rules import HolderHistory, RuleEngine, TouchRecord
from followup.planning.simulate import CADENCE_RULES, SimulationResult
from followup.vocab import ACTIVE_STATUSES, WEEKDAYS


class ReferenceFlagTimeline:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.engine = RuleEngine(policy)
        self.weekday = WEEKDAYS.index(policy.report.weekly.day)
        self.report_time = policy.report.weekly.time
        self.seen: set[tuple[int, str]] = set()

    def __call__(self, now: datetime, result: SimulationResult) -> None:
        if now.weekday() != self.weekday:
            return
        moment = datetime.combine(now.date(), self.report_time, tzinfo=now.tzinfo)
        for holder in result.holders:
            if holder.status not in ACTIVE_STATUSES:
                continue
            cadence, phase = holder_phase(
                self.policy,
                track=holder.track,
                department=holder.department,
                offer_date=holder.offer_date,
                accepted_date=holder.accepted_date,
                start_date=holder.start_date,
                today=moment.date(),
            )
            history = HolderHistory(
                holder_id=holder.id,
                external_id=holder.external_id,
                name="",
                status=holder.status,
                offer_date=holder.offer_date,
                start_date=holder.start_date,
                cadence=cadence,
                phase=phase,
                reachable_channels=tuple(sorted(holder.reachable)),
                delivered=tuple(
                    TouchRecord(t.due_at, t.channel, t.kind)
                    for t in result.by_holder.get(holder.id, [])
                    if t.due_at <= moment
                ),
            )
            for flag in self.engine.evaluate(history, moment):
                key = (holder.id, flag.rule)
                if flag.rule in CADENCE_RULES and key not in self.seen:
                    self.seen.add(key)
                    result.notes.append({**flag.record(), "since": moment.isoformat()})
