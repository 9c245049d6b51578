"""The task edge: statuses in ``task_statuses`` (no row = 未提出), each holder's due date, 提出状況.

``(holder, task)`` is unique, so marking twice or importing the same CSV again changes one row; who and
when are kept on the row (and in the audit log by the command that changed it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.config.schema import TASK_STATUSES, Policy, Task
from followup.db.chunks import in_chunks
from followup.db.models import OfferHolder, TaskStatus
from followup.labels import TASK_STATUS_LABELS
from followup.tasks.sheet import TaskRow
from followup.vocab import ACTIVE_STATUSES


def task_states(session: Session) -> dict[int, dict[str, str]]:
    """holder id → {task: status} for the planner and the rules; pending rows are left out."""
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for holder_id, task, status in session.execute(
        select(TaskStatus.holder_id, TaskStatus.task, TaskStatus.status)
    ):
        if status != "pending":
            states[holder_id][task] = status
    return states


def due_date(task: Task, holder: OfferHolder, calendar: BusinessCalendar) -> date | None:
    """The holder's due date for ``task`` (business days counted on the organisation's calendar)."""
    dates: dict[str, date | None] = {
        "offer": holder.offer_date,
        "accepted": holder.accepted_date,
        "start": holder.start_date,
    }
    return task.due_on(dates, calendar.is_business_day)


def late_from(due: date, calendar: BusinessCalendar) -> date:
    """The first day a task due on ``due`` is late: the business day after it (as task_overdue counts)."""
    return calendar.next_business_day(due + timedelta(days=1))


def audience(session: Session, policy: Policy, task: Task) -> list[OfferHolder]:
    """The active holders the task is for: in its audience and followed by a cadence."""
    query = (
        select(OfferHolder)
        .where(OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.erased_at.is_(None))
        .order_by(OfferHolder.external_id)
    )
    return [
        holder
        for holder in session.scalars(query)
        if task.applies(holder.track, holder.department)
        and policy.cadence_for(holder.track, holder.department) is not None
    ]


def status_rows(
    session: Session, policy: Policy, name: str, calendar: BusinessCalendar | None = None
) -> list[TaskRow]:
    """提出状況 of task ``name``: every holder of its audience, plus anyone marked outside it."""
    task = policy.tasks[name]
    calendar = calendar or BusinessCalendar.from_policy(policy)
    marks = {row.holder_id: row for row in session.scalars(select(TaskStatus).where(TaskStatus.task == name))}
    holders = audience(session, policy, task)
    listed = {h.id for h in holders}
    outside = [i for i in marks if i not in listed]
    for chunk in in_chunks(outside):
        holders += session.scalars(
            select(OfferHolder).where(OfferHolder.id.in_(chunk), OfferHolder.erased_at.is_(None))
        )
    rows = []
    for holder in sorted(holders, key=lambda h: h.external_id):
        mark = marks.get(holder.id)
        due = due_date(task, holder, calendar)
        if mark is None and task.done_on_acceptance and holder.accepted_date is not None:
            rows.append(
                TaskRow(
                    holder.id,
                    holder.external_id,
                    holder.name,
                    holder.department or "",
                    due,
                    "submitted",
                    None,
                    "",
                    f"内定承諾済み({holder.accepted_date.isoformat()})",
                    None,
                )
            )
            continue
        rows.append(
            TaskRow(
                holder.id,
                holder.external_id,
                holder.name,
                holder.department or "",
                due,
                mark.status if mark is not None else "pending",
                mark.changed_at if mark is not None else None,
                mark.changed_by if mark is not None else "",
                (mark.note or "") if mark is not None else "",
                late_from(due, calendar) if due is not None else None,
            )
        )
    return rows


def set_status(
    session: Session,
    holder_id: int,
    task: str,
    status: str,
    *,
    at: datetime,
    actor: str,
    source: str = "cli",
    note: str | None = None,
) -> bool:
    """Record one holder's status for ``task``; returns whether anything changed."""
    if status not in TASK_STATUSES:
        raise ValueError(f"unknown task status {status!r} ({' / '.join(TASK_STATUSES)})")
    row = session.scalars(
        select(TaskStatus).where(TaskStatus.holder_id == holder_id, TaskStatus.task == task)
    ).first()
    if row is None:
        if status == "pending" and not note:
            return False
        row = TaskStatus(holder_id=holder_id, task=task, status="pending", changed_by=actor, source=source)
        session.add(row)
    wanted_note = note if note is not None else row.note
    if row.status == status and row.note == wanted_note:
        return False
    row.status, row.note = status, wanted_note
    row.changed_at, row.changed_by, row.source = at, actor[:200], source
    session.flush()
    return True


def statuses_of(session: Session, holder_id: int) -> Sequence[TaskStatus]:
    """One holder's marks (the timeline and ``holders show``)."""
    return list(session.scalars(select(TaskStatus).where(TaskStatus.holder_id == holder_id)))


def holder_tasks(session: Session, policy: Policy, holder: OfferHolder) -> list[dict[str, Any]]:
    """The holder's tasks as JSON-ready records: every task of their audience (and any marked), each with
    the due date and the status (the timeline, ``holders show --json``, the dashboard)."""
    calendar = BusinessCalendar.from_policy(policy)
    marks = {m.task: m for m in statuses_of(session, holder.id)}
    found = []
    for name, task in policy.tasks.items():
        mark = marks.get(name)
        if mark is None and not task.applies(holder.track, holder.department):
            continue
        due = due_date(task, holder, calendar)
        status = mark.status if mark is not None else "pending"
        if mark is None and task.done_on_acceptance and holder.accepted_date is not None:
            status = "submitted"
        found.append(
            {
                "task": name,
                "title": task.title,
                "due": due.isoformat() if due else None,
                "status": status,
                "status_label": TASK_STATUS_LABELS[status],
                "changed_at": mark.changed_at.isoformat() if mark is not None else None,
                "changed_by": mark.changed_by if mark is not None else None,
                "note": mark.note if mark is not None else None,
            }
        )
    return found
