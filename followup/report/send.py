"""Send the weekly report once per ISO week, however many schedulers call this.

The ``report_runs.week`` unique key is inserted in the same transaction that sends: a second scheduler's
insert waits for the first transaction and then fails on the key, so it does not send; a failed send
rolls the row back, so the next tick tries again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.channels.email import EmailPolicy, SmtpSettings, send_over_smtp
from followup.config import Policy, resolve_env
from followup.config.context import AppContext
from followup.db.models import ReportRun
from followup.files import write_private
from followup.flags.store import evaluate_and_persist
from followup.report.data import WeeklyReport, build_report, iso_week, workspace_url
from followup.report.render import build_email
from followup.vocab import WEEKDAYS


def _outbox(context: AppContext) -> Path:
    from followup.delivery.deliver import outbox_directory  # the delivery area owns the outbox convention

    return outbox_directory(context)


def transmit(msg: EmailMessage, smtp_url: str, timeout: float = 30) -> None:
    """Send the report through the same SMTP session code as the email channel."""
    send_over_smtp(SmtpSettings(smtp_url), msg, timeout=timeout)


def send_weekly_report(context: AppContext, now: datetime) -> Path | str:
    """Evaluate the rules, build the report and email it (SMTP when ``smtp_url`` resolves, else an
    ``.eml`` file in the outbox). Returns the outbox path or the Message-ID; when this week's report
    was already sent, returns what that run recorded, without sending again."""
    policy = context.policy
    week = iso_week(now, policy)
    with context.session() as session:
        done = session.scalar(select(ReportRun).where(ReportRun.week == week))
        if done is not None:
            return str(done.summary.get("delivered", ""))
    evaluate_and_persist(context, now)
    with context.session() as session:
        report = weekly_report(session, context, now)
        run = ReportRun(week=week, generated_at=now, summary=report.summary())
        session.add(run)
        try:
            session.flush()  # takes the week: another scheduler's insert waits, then fails
        except IntegrityError:
            session.rollback()
            return ""
        msg = build_email(report, policy, templates_root=context.templates_root)
        smtp_url = resolve_env(policy.channels.of(EmailPolicy).smtp_url)
        result: Path | str
        if smtp_url:
            transmit(msg, smtp_url)
            result = str(msg["Message-ID"])
        else:
            folder = _outbox(context) / "reports"
            result = folder / f"weekly-{week}.eml"
            write_private(result, msg.as_bytes())
        run.summary = {**report.summary(), "delivered": str(result)}
    return result


def report_due_at(policy: Policy, now: datetime) -> datetime:
    """The latest scheduled report moment (``report.weekly.day`` at ``.time``) at or before ``now``."""
    weekly = policy.report.weekly
    local = now.astimezone(policy.organization.tz)
    back = (local.weekday() - WEEKDAYS.index(weekly.day)) % 7
    due = datetime.combine(local.date() - timedelta(days=back), weekly.time, tzinfo=local.tzinfo)
    return due if due <= local else due - timedelta(days=7)


def send_weekly_report_if_due(context: AppContext, now: datetime) -> Path | str | None:
    """The scheduler's job, run every few minutes: sends this week's report once its time has come.

    Polling instead of one cron firing means a report survives an SMTP error, a restart or a leader
    handover at the scheduled minute: the next run sends it (the ReportRun week key keeps it single).
    """
    due = report_due_at(context.policy, now)
    if iso_week(due, context.policy) != iso_week(now, context.policy):
        return None  # last week's slot: its week is over, the next report comes at this week's time
    return send_weekly_report(context, now)


def weekly_report(session: Session, context: AppContext, now: datetime) -> WeeklyReport:
    """This week's report as the organisation sends it: the workspace link and the messages' titles."""
    return build_report(
        session,
        context.policy,
        now,
        workspace_url=workspace_url(context.settings.base_url),
        titles=message_titles(context),
    )


def message_titles(context: AppContext) -> dict[str, str]:
    """template → what HR calls the message, for the report's 一斉配信 rows."""
    from followup.rendering.templates import MessageTemplates

    return MessageTemplates(context.templates_root, context.policy.organization.locale).titles()
