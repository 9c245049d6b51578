"""A message rendered once for one real recipient before anything is planned: an announcement (一斉配信)
from the CLI or the workspace is refused when its template is missing or does not render, instead of
failing touch by touch at send time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from followup.config.context import AppContext
from followup.db.models import OfferHolder, Touch
from followup.delivery.deliver import message_context
from followup.delivery.links import LinkSigner
from followup.rendering.templates import MessageTemplates, TemplateProblem


@dataclass(frozen=True)
class SampleTouch:
    """The first recipient's touch as it would be planned (never added to a session)."""

    holder_id: int
    key: str
    cadence: str | None
    phase: str | None
    channel: str | None
    due_at: datetime


def check_announcement(context: AppContext, template: str, first: SampleTouch | None, at: datetime) -> bool:
    """Raise :class:`TemplateProblem` for a template that does not exist or does not render for ``first``;
    return whether it is an essential notice (it then reaches holders who opted out of follow-up)."""
    templates = MessageTemplates(context.templates_root, locale=context.policy.organization.locale)
    if template not in templates.names():
        raise TemplateProblem(
            context.templates_root / "messages" / context.policy.organization.locale / template,
            None,
            f"no message template {template!r} (needs subject.j2 and text.j2)",
        )
    meta = templates.meta(template)
    if first is None:
        return meta.essential
    signer = LinkSigner.from_settings(context.settings)
    with context.session() as session:
        holder = session.get(OfferHolder, first.holder_id)
        assert holder is not None
        sample = Touch(
            id=0,
            key=first.key,
            holder_id=holder.id,
            cadence=first.cadence or "announce",
            phase=first.phase or "announce",
            seq=0,
            kind="message",
            channel=first.channel,
            template=template,
            due_at=first.due_at,
        )
        values = message_context(holder, sample, context.policy, signer, sent_at=at)
        if meta.needs_content and values["content"] is None:
            raise TemplateProblem(context.config_file, None, f"{template} needs this month's content")
        templates.render(template, values)
    return meta.essential
