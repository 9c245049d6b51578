"""Timeline entries in the words a person reads: the message's subject instead of its template id,
Japanese names for flags, channels and kinds. Used by ``followup holders show`` and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from followup.config.context import AppContext
from followup.config.messages import SAMPLE_POOL, template_context
from followup.db.models import OfferHolder
from followup.delivery.deliver import find_phase, holder_facts
from followup.labels import CHANGE_FIELD_LABELS, CHANNEL_LABELS, RULE_LABELS, STATUS_LABELS, label
from followup.rendering.templates import MessageTemplates, TemplateProblem
from followup.vocab import POOL_CADENCE

# the talent pool's lifecycle entries (HolderChange.field) in the words HR reads
POOL_CHANGE_LABELS = {"consent_date": "連絡への同意(人材プール)", "reapplied": "再応募(人材プール)"}


def message_subject(
    context: AppContext, templates: MessageTemplates, holder: OfferHolder, item: dict[str, Any]
) -> str | None:
    """The subject this touch's message has (or had), without the 【社名】 prefix every message shares."""
    name = item.get("template")
    if not name or not templates.exists(name):
        return None
    policy = context.policy
    org = policy.organization
    phase = find_phase(policy, item.get("cadence") or "", item.get("phase") or "")
    due = datetime.fromisoformat(item["at"]).astimezone(org.tz).date()
    values = template_context(
        policy,
        holder_facts(holder),
        template=name,
        send_day=due,
        phase_name=item.get("phase") or "",
        phase_label=phase.label if phase else "",
        event_name=item.get("event"),
        # a pool mail: only its subject is wanted here, and the subject shows no link
        pool=SAMPLE_POOL if item.get("cadence") == POOL_CADENCE else None,
    )
    try:
        subject = templates.render(name, values).subject
    except TemplateProblem:
        return None
    return subject.removeprefix(f"【{org.name}】").strip() or subject


def change_label(summary: str) -> str:
    """「ステータス: 内定(承諾前) → 内定承諾」 for ``status: offered → accepted`` (field and status words)."""
    field, _, rest = summary.partition(": ")
    name = POOL_CHANGE_LABELS.get(field) or CHANGE_FIELD_LABELS.get(field)
    if name is None:
        return summary
    if field in ("status", "created"):
        old, arrow, new = rest.partition(" → ")
        rest = f"{STATUS_LABELS.get(old, old)}{arrow}{STATUS_LABELS.get(new, new)}"
    return f"{name}: {rest}"


def timeline_labels(context: AppContext, holder: OfferHolder, record: dict[str, Any]) -> None:
    """Add ``label`` to every item of ``holder_timeline``'s record, in place."""
    templates = MessageTemplates(context.templates_root, context.policy.organization.locale)
    for item in record.get("items", []):
        kind = item.get("type")
        if kind == "touch":
            channel = label(CHANNEL_LABELS, item.get("channel"))
            if item.get("kind") == "manual":
                note = (item.get("note") or "").split("\n")[0]
                item["label"] = f"{channel}:{note}" if note else channel
            elif item.get("kind") == "escalation":  # the assignee was asked again (manual_overdue)
                note = (item.get("note") or "").split("\n")[0]
                item["label"] = f"担当者へ再依頼:{note}" if note else "担当者へ再依頼"
            else:
                subject = message_subject(context, templates, holder, item) if item.get("at") else None
                what = "アンケート" if item.get("kind") == "survey" and not subject else subject
                item["label"] = f"{channel}:{what or item.get('template') or ''}"
        elif kind == "answer":
            survey = context.policy.surveys.get(str(item.get("summary", "")))
            if survey is not None:
                item["label"] = survey.title
        elif kind in ("rsvp", "attendance"):  # 「内定式: 出席 / line」, not the event's key
            event, sep, rest = str(item.get("summary", "")).partition(": ")
            found = context.policy.events.get(event)
            title = found.title if found is not None else event
            channel, slash, where = rest.rpartition(" / ")
            via = {"web": "回答ページ", "phone": "電話", "cli": "人事が記録"}.get(
                where
            ) or CHANNEL_LABELS.get(where)
            if slash and via:
                rest = f"{channel}({via})"
            item["label"] = f"{title}{sep}{rest}"
        elif kind == "change":
            item["label"] = change_label(str(item.get("summary", "")))
        elif kind == "click":
            link = str(item.get("summary", "")).partition(": ")[2]
            item["label"] = f"人材プールのリンクを開いた{(': ' + link) if link else ''}"
        elif kind != "flag":
            summary = str(item.get("summary", ""))
            channel, sep, rest = summary.partition(": ")
            if channel in CHANNEL_LABELS:
                item["label"] = f"{CHANNEL_LABELS[channel]}{sep}{rest}"
        if kind == "flag":
            rule = item.get("rule") or ""
            item["label"] = (
                f"{RULE_LABELS.get(rule, rule)}: {str(item.get('summary', '')).split(': ', 1)[-1]}"
            )
