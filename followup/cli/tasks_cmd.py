"""``followup tasks``: 提出状況 per task (未提出・提出済・確認済・対象外), one task's list (and its CSV for
Excel: CP932 or UTF-8 with BOM, Japanese headers), HR marking receipt for one holder, and an edited CSV
imported back (all or nothing, FILE:LINE errors). Every change is in the audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from followup.errors import Problem, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext
    from followup.config.schema import Task
    from followup.tasks.sheet import (
        TaskRow,
    )


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
tasks_app = typer.Typer(
    help="提出物・入社前研修 — 提出状況, the per-task list (CSV), marking receipt, CSV import."
)


def _task(context: AppContext, name: str) -> Task:
    task = context.policy.tasks.get(name)
    if task is None:
        known = ", ".join(context.policy.tasks) or "(none)"
        raise UserInputError(
            Problem(Path(name), None, None, f"no task with this name under tasks: ({known})")
        )
    return task


def _rows(context: AppContext, name: str) -> list[TaskRow]:
    from followup.tasks.store import status_rows

    _task(context, name)
    with context.session() as session:
        return status_rows(session, context.policy, name)


def list_tasks(
    ctx: typer.Context,
    now: Annotated[str | None, typer.Option("--now", help="期限切れを数える日時 (ISO 8601)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """提出状況 — each task with its due date and counts: 未提出・提出済・確認済・対象外, 期限切れ."""
    from followup.cli.timeparse import parse_now
    from followup.config.schema import TASK_STATUSES
    from followup.labels import TASK_STATUS_LABELS
    from followup.tasks.sheet import counts, overdue

    context: AppContext = ctx.obj
    today = parse_now(now, context).date()
    records = []
    for name, task in context.policy.tasks.items():
        rows = _rows(context, name)
        records.append(
            {
                "task": name,
                "title": task.title,
                "due": str(task.due),
                **counts(rows),
                "overdue": len(overdue(rows, today)),
            }
        )
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    grid = Table(title="提出物の提出状況")
    for header in ("提出物", "名称", "期限", *TASK_STATUS_LABELS.values(), "期限切れ"):
        grid.add_column(header)
    for r in records:
        grid.add_row(
            *(escape(str(r[k])) for k in ("task", "title", "due", *TASK_STATUSES, "overdue")),
        )
    out.print(grid)


def show_task(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The task's name under tasks:")],
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the 提出状況 as CSV to this file.")
    ] = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="cp932 (Excel's default) or utf-8-sig.")
    ] = "cp932",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """提出状況の一覧 — each holder of the task's audience, their due date and status (CSV for Excel)."""
    from followup.cli.csvfiles import write_export
    from followup.tasks.sheet import counts, table

    context: AppContext = ctx.obj
    task = _task(context, name)
    rows = _rows(context, name)
    lines = table(rows, context.policy.organization.tz)
    if csv_file is not None:
        write_export(csv_file, lines, encoding)
        err.print(f"{escape(str(csv_file))}: {len(rows)}名の提出状況 ({encoding})")
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "task": name,
                    "title": task.title,
                    "counts": counts(rows),
                    "rows": [dict(zip(lines[0], line, strict=True)) for line in lines[1:]],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    grid = Table(title=f"{task.title} 提出状況 ({len(rows)}名)")
    for header in lines[0]:
        grid.add_column(header, overflow="fold")
    for line in lines[1:]:
        grid.add_row(*(escape(cell) for cell in line))
    out.print(grid)


def mark_task(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The task's name under tasks:")],
    external_id: Annotated[str, typer.Argument(help="The holder's external_id")],
    status: Annotated[
        str, typer.Option("--status", help="submitted|confirmed|exempt (提出済・確認済・対象外)")
    ],
    note: Annotated[str | None, typer.Option("--note", help="メモ (e.g. 原本受領)")] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """受領を記録 — mark one holder's task 提出済, 確認済 or 対象外 (未提出 puts it back)."""
    from followup.cli.timeparse import parse_now
    from followup.holders.importer import find_holder
    from followup.labels import TASK_STATUS_LABELS
    from followup.ops.audit import audit, current_actor
    from followup.tasks.sheet import parse_status
    from followup.tasks.store import set_status

    context: AppContext = ctx.obj
    _task(context, name)
    try:
        wanted = parse_status(status)
    except ValueError as exc:
        raise UserInputError(Problem(Path("--status"), None, None, str(exc))) from None
    moment = parse_now(now, context)
    actor = current_actor()
    with context.session() as session:
        holder = find_holder(session, external_id)
        if holder is None:
            raise UserInputError(
                Problem(Path(external_id), None, None, "no offer holder with this external_id")
            )
        changed = set_status(
            session, holder.id, name, wanted, at=moment, actor=actor, source="cli", note=note
        )
        if changed:
            audit(
                session,
                "task_marked",
                now=moment,
                actor=actor,
                task=name,
                external_id=external_id,
                status=wanted,
            )
    word = TASK_STATUS_LABELS[wanted]
    out.print(f"{escape(external_id)}: {escape(name)} → {word}" + ("" if changed else "(変更なし)"))


def _read_csv(path: Path) -> list[tuple[int, str, str, str | None]]:
    """(line, external_id, status, note) from a CSV with 内定者ID and 状況 columns (the exported list)."""
    from followup.cli.csvfiles import read_sheet
    from followup.tasks.sheet import ID_HEADERS, NOTE_HEADERS, STATUS_HEADERS, parse_status

    text = read_sheet(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = reader.fieldnames or []
    id_col = next((h for h in ID_HEADERS if h in fields), None)
    status_col = next((h for h in STATUS_HEADERS if h in fields), None)
    note_col = next((h for h in NOTE_HEADERS if h in fields), None)
    if id_col is None or status_col is None:
        raise UserInputError(
            Problem(path, 1, None, "列「内定者ID」と「状況」(提出済・確認済・対象外) が必要です")
        )
    found, problems = [], []
    for line, record in enumerate(reader, start=2):
        value = (record.get(status_col) or "").strip()
        external_id = (record.get(id_col) or "").strip()
        if not value and not external_id:
            continue  # a blank line
        if not external_id:
            problems.append(Problem(path, line, None, "内定者ID が空です"))
            continue
        try:
            status = parse_status(value)
        except ValueError as exc:
            problems.append(Problem(path, line, None, str(exc)))
            continue
        note = (record.get(note_col) or "").strip() if note_col else None
        found.append((line, external_id, status, note))
    if problems:
        raise UserInputError(problems)
    return found


def import_task(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The task's name under tasks:")],
    csv_file: Annotated[
        Path, typer.Option("--csv", help="内定者ID and 状況 columns; the CSV from `tasks show --csv` works.")
    ],
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """CSVから提出状況を取り込み — all or nothing: one bad line (FILE:LINE) and nothing is changed."""
    from followup.cli.timeparse import parse_now
    from followup.holders.importer import find_holder
    from followup.ops.audit import audit, current_actor
    from followup.tasks.store import set_status

    context: AppContext = ctx.obj
    _task(context, name)
    entries = _read_csv(csv_file)
    moment: datetime = parse_now(now, context)
    actor = current_actor()
    changed = 0
    with context.session() as session:
        problems, holders = [], []
        for line, external_id, _status, _note in entries:
            holder = find_holder(session, external_id)
            if holder is None:
                problems.append(Problem(csv_file, line, None, f"内定者ID {external_id!r} が見つかりません"))
            holders.append(holder)
        if problems:
            raise UserInputError(problems)
        for (_line, _external_id, status, note), holder in zip(entries, holders, strict=True):
            assert holder is not None
            changed += set_status(
                session, holder.id, name, status, at=moment, actor=actor, source="csv", note=note or None
            )
        audit(
            session,
            "task_imported",
            now=moment,
            actor=actor,
            task=name,
            file=str(csv_file),
            rows=len(entries),
            changed=changed,
        )
    out.print(f"{name}: 提出状況 {changed}件を更新しました(変更なし {len(entries) - changed}件)")


def register(app: typer.Typer) -> None:
    tasks_app.command("list")(list_tasks)
    tasks_app.command("show")(show_task)
    tasks_app.command("mark")(mark_task)
    tasks_app.command("import")(import_task)
    app.add_typer(tasks_app, name="tasks")
