"""The variables a message template gets, as a pure function of the policy and one holder's facts.

Delivery (``followup.delivery.deliver.message_context``) and check-config (the sparse sample holders)
build the context here, so what HR checks is exactly what is sent. Missing facts are ``None`` (a holder
without a mentor gets ``mentor: None``), never an empty string a sentence would swallow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from followup.channels.base import resolve_env
from followup.config.schema import Policy

_SPACE = re.compile(r"[ \u3000]+")


def family_name(name: str) -> str:
    """``山田 花子`` → ``山田`` (body text says 「山田様」); a name without a space stays whole."""
    parts = _SPACE.split(name.strip())
    return parts[0] if parts and parts[0] else name.strip()


@dataclass(frozen=True)
class HolderFacts:
    external_id: str
    name: str
    track: str
    offer_date: date
    start_date: date
    email: str | None = None
    department: str | None = None
    mentor_email: str | None = None
    line_user_id: str | None = None
    slack_user_id: str | None = None


def _month_key(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def template_context(
    policy: Policy,
    holder: HolderFacts,
    *,
    template: str | None,
    send_day: date,
    phase_name: str,
    phase_label: str,
    event_name: str | None = None,
    survey_url: str | None = None,
    unsubscribe_url: str | None = None,
    rsvp_url: str | None = None,
    task_name: str | None = None,
    task_due: date | None = None,
    pool: dict[str, Any] | None = None,
) -> dict[str, Any]:
    org = policy.organization
    task = policy.tasks.get(task_name) if task_name else None
    mentor = policy.mentors.get(holder.mentor_email or "")
    event = policy.events.get(event_name) if event_name else None
    content = policy.content_for(template, send_day)
    return {
        "holder": {
            "external_id": holder.external_id,
            "name": holder.name,
            "family_name": family_name(holder.name),
            "email": holder.email or None,
            "department": holder.department or None,
            "track": holder.track,
            "offer_date": holder.offer_date,
            "start_date": holder.start_date,
        },
        "company": {
            "name": org.name,
            "president": org.president,
            "president_family_name": family_name(org.president) if org.president else "",
            "hr_name": org.hr_name,
            "hr_email": org.hr_email,
            "hr_phone": org.hr_phone,
        },
        # a mentor the config does not know (email missing from mentors:) is no mentor to a reader
        "mentor": (
            {"name": mentor.name, "email": holder.mentor_email, "department": mentor.department or None}
            if mentor is not None
            else None
        ),
        "phase": {"name": phase_name, "label": phase_label or phase_name},
        "days_until_start": (holder.start_date - send_day).days,
        "survey_url": survey_url,
        "unsubscribe_url": unsubscribe_url,
        "rsvp_url": rsvp_url,  # the event's answer page (出席 / 欠席 / 未定), while answers are taken
        "event": (
            {
                "title": event.title,
                "starts_at": event.starts_at,
                "place": event.place or None,
                "url": event.url or None,
                "deadline": event.deadline,
            }
            if event is not None
            else None
        ),
        # a task reminder's task (提出物・入社前研修) with this holder's due date
        "task": (
            {
                "title": task.title,
                "kind": task.kind,
                "due": task_due,
                "overdue": send_day > task_due,
                "days_left": (task_due - send_day).days,
                "submit_url": task.submit_url or None,
                "how": task.how or None,
            }
            if task is not None and task_due is not None
            else None
        ),
        "first_day": policy.first_day.for_track(holder.track) if policy.first_day is not None else None,
        "content": content.model_dump() if content is not None else None,
        # the talent pool's links (page_url: /r/TOKEN; career_url, openings_url: counted redirects, or
        # None when not configured) and whether consent is recorded; None outside pool touches
        "pool": pool,
        "cohort": _cohort(policy, holder.track),
    }


def _cohort(policy: Policy, track: str) -> dict[str, Any] | None:
    """The holder's track's cohort (内定者同士の交流): its title and LINE group invitation URL, if any."""
    cohort = policy.cohorts.get(track)
    if cohort is None:
        return None
    return {"title": cohort.title, "line_group_url": resolve_env(cohort.line_group_url)}


# --- sparse sample holders (check-config) --------------------------------------------------------------

_BASE = HolderFacts(
    external_id="SAMPLE-001",
    name="山田 花子",
    track="new_grad",
    offer_date=date(2026, 6, 1),
    start_date=date(2027, 4, 1),
    email="hanako.yamada@example.ac.jp",
    department="営業部",
    mentor_email=None,
)


def sample_holders(policy: Policy) -> list[tuple[str, HolderFacts]]:
    """Every kind of holder that can exist, each missing something: what check-config renders."""
    known_mentor = next(iter(policy.mentors), None)
    full = replace(_BASE, mentor_email=known_mentor)
    return [
        ("full (mentor, department, email)", full),
        ("no mentor", replace(full, mentor_email=None)),
        ("mentor missing from mentors:", replace(full, mentor_email="not-in-config@example.co.jp")),
        ("no department", replace(full, department=None)),
        ("LINE only (no email)", replace(full, email=None, line_user_id="U0123456789abcdef")),
        (
            "mid-career, October start, nothing optional",
            replace(
                _BASE,
                name="佐藤健",
                track="mid_career",
                offer_date=date(2026, 8, 3),
                start_date=date(2026, 10, 1),
                department=None,
                mentor_email=None,
            ),
        ),
        (
            "new graduate, October start",
            replace(full, offer_date=date(2026, 5, 11), start_date=date(2026, 10, 1)),
        ),
    ]


SAMPLE_POOL: dict[str, Any] = {
    "page_url": "https://followup.example.jp/r/SAMPLE.token",
    "career_url": "https://followup.example.jp/go/SAMPLE.career",
    "career_label": "キャリア相談サービスのご案内",
    "openings_url": "https://followup.example.jp/go/SAMPLE.openings",
    "consented": True,
}


def sample_contexts(
    policy: Policy, template: str, uses: list[tuple[str, str, str | None]], *, task: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(label, context) for each sample holder × each (phase name, phase label, event) the template is
    used in, with and without a survey link. The send day is one in the holder's season with content,
    when the template has dated content, so the check sees what a real touch of that month shows."""
    out: list[tuple[str, dict[str, Any]]] = []
    entries = policy.content.get(template, ())
    pools: list[tuple[str, dict[str, Any] | None]] = [("", None)]
    if template in {step.template for step in policy.pool.steps}:
        pools = [
            (", pool links", SAMPLE_POOL),
            (", no career or openings link", {**SAMPLE_POOL, "career_url": None, "openings_url": None}),
        ]
    for label, holder in sample_holders(policy):
        send_day = holder.start_date - timedelta(days=60)
        if entries:
            first = entries[0].month
            send_day = date(int(first[:4]), int(first[5:7]), 15)
        for (phase_name, phase_label, event), (pool_label, pool) in (
            (use, p) for use in uses or [("initial", "", None)] for p in pools
        ):
            for survey_url in ("https://followup.example.jp/s/SAMPLE.token", None):
                context = template_context(
                    policy,
                    holder,
                    template=template,
                    send_day=send_day,
                    phase_name=phase_name,
                    phase_label=phase_label,
                    event_name=event,
                    survey_url=survey_url,
                    unsubscribe_url="https://followup.example.jp/opt-out/SAMPLE.token",
                    rsvp_url=(  # as delivery gives it: an event's own touches, while it takes answers
                        "https://followup.example.jp/e/SAMPLE.token"
                        if phase_name == "event" and event in policy.events and policy.events[event].rsvp
                        else None
                    ),
                    task_name=task,
                    task_due=_sample_due(policy, task, holder),
                    pool=pool,
                )
                where = f"{label}, phase {phase_name}{pool_label}" + (
                    ", no survey link" if survey_url is None else ""
                )
                out.append((where, context))
                if entries and survey_url is None:  # a month HR wrote no content for
                    out.append((f"{where}, a month without content", {**context, "content": None}))
    return out


def _sample_due(policy: Policy, task: str | None, holder: HolderFacts) -> date | None:
    """A sample holder's due date for ``task`` (weekdays as business days: a check, not a send)."""
    found = policy.tasks.get(task) if task else None
    if found is None:
        return None
    dates: dict[str, date | None] = {
        "offer": holder.offer_date,
        "accepted": holder.offer_date,
        "start": holder.start_date,
    }
    return found.due_on(dates)


def content_months(policy: Policy, template: str) -> list[str]:
    return [entry.month for entry in policy.content.get(template, ())]


def now_month(moment: datetime, policy: Policy) -> str:
    return _month_key(moment.astimezone(policy.organization.tz).date())
