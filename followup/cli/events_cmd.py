"""``followup events``: list events with RSVP counts, show one event's 出欠一覧 (and export it as CSV for
Excel: CP932 or UTF-8 with BOM, Japanese headers), record answers taken by phone and the day's
attendance (per holder or from a CSV)."""

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
    from sqlalchemy.orm import Session

    from followup.config.context import AppContext
    from followup.config.schema import Event
    from followup.events.store import RosterRow


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
events_app = typer.Typer(help="行事の出欠 — events: RSVP counts, 出欠一覧 (CSV), answers and attendance.")

ATTENDANCE_WORDS = {"出席": "attended", "attended": "attended", "欠席": "absent", "absent": "absent"}
ID_HEADERS = ("内定者ID", "external_id")
ATTENDANCE_HEADERS = ("当日の出欠", "出欠", "attendance")


def _answer_words() -> dict[str, str]:
    """出席/欠席/未定 and the stored words themselves (the store, with the ORM, only when recording)."""
    from followup.events.store import ANSWERS

    return {"出席": "attending", "欠席": "declined", "未定": "maybe", **{a: a for a in ANSWERS}}


def _event(context: AppContext, name: str) -> Event:
    event = context.policy.events.get(name)
    if event is None:
        known = ", ".join(context.policy.events) or "(none)"
        raise UserInputError(
            Problem(Path(name), None, None, f"no event with this name under events: ({known})")
        )
    return event


def _roster(context: AppContext, name: str) -> list[RosterRow]:
    from followup.events.store import audience_ids, roster

    event = _event(context, name)
    with context.session() as session:
        return roster(session, name, audience_ids(session, event))


def list_events(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """行事の一覧と出欠の集計 — every event with its date, deadline, capacity and RSVP counts."""
    from followup.events.roster import counts

    context: AppContext = ctx.obj
    records = []
    for name, event in context.policy.events.items():
        records.append(
            {
                "event": name,
                "title": event.title,
                "starts_at": event.starts_at.isoformat(),
                "deadline": event.deadline.isoformat() if event.deadline else None,
                "capacity": event.capacity,
                **counts(_roster(context, name)),
            }
        )
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    grid = Table(title="行事と出欠")
    headers = (
        "行事",
        "名称",
        "日時",
        "締切",
        "定員",
        "出席",
        "待ち",
        "欠席",
        "未定",
        "未回答",
        "当日出席",
        "当日欠席",
    )
    for header in headers:
        grid.add_column(header)
    for r in records:
        grid.add_row(
            *(
                escape(str(v if v is not None else "—"))
                for v in (
                    r["event"],
                    r["title"],
                    str(r["starts_at"])[:16],
                    r["deadline"],
                    r["capacity"],
                    r["attending"],
                    r["waitlisted"],
                    r["declined"],
                    r["maybe"],
                    r["unanswered"],
                    r["attended"],
                    r["absent"],
                )
            )
        )
    out.print(grid)


def show_event(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The event's name under events:")],
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the 出欠一覧 as CSV to this file.")
    ] = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="cp932 (Excel's default) or utf-8-sig.")
    ] = "cp932",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """出欠一覧 — who answered what (and the event's questions), who has not, and the day's attendance."""
    from followup.cli.csvfiles import write_export
    from followup.events.roster import counts, table

    context: AppContext = ctx.obj
    event = _event(context, name)
    rows = _roster(context, name)
    lines = table(rows, event.questions, context.policy.organization.tz)
    if csv_file is not None:
        write_export(csv_file, lines, encoding)
        err.print(f"{escape(str(csv_file))}: {len(rows)}名の出欠一覧 ({encoding})")
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "event": name,
                    "counts": counts(rows),
                    "rows": [dict(zip(lines[0], line, strict=True)) for line in lines[1:]],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    grid = Table(title=f"{event.title} 出欠一覧 ({len(rows)}名)")
    for header in lines[0]:
        grid.add_column(header, overflow="fold")
    for line in lines[1:]:
        grid.add_row(*(escape(cell) for cell in line))
    out.print(grid)


def _holder_id(session: Session, external_id: str) -> int:
    from followup.holders.importer import find_holder

    holder = find_holder(session, external_id)
    if holder is None:
        raise UserInputError(Problem(Path(external_id), None, None, "no offer holder with this external_id"))
    return holder.id


def rsvp_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The event's name under events:")],
    external_id: Annotated[str, typer.Argument(help="The holder's external_id")],
    answer: Annotated[str, typer.Argument(help="出席 / 欠席 / 未定 (attending / declined / maybe)")],
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """電話などで受けた出欠を記録 — record an answer HR took by phone (deadline not enforced)."""
    from followup.cli.timeparse import parse_now
    from followup.events.store import RsvpError, record_rsvp

    context: AppContext = ctx.obj
    event = _event(context, name)
    answer_words = _answer_words()
    if answer not in answer_words:
        raise UserInputError(Problem(Path(answer), None, None, "answer must be 出席, 欠席 or 未定"))
    with context.session() as session:
        holder_id = _holder_id(session, external_id)
    try:
        result = record_rsvp(
            context.session,
            holder_id,
            name,
            event,
            answer_words[answer],
            at=parse_now(now, context),
            source="hr",
            enforce_deadline=False,
        )
    except RsvpError as exc:
        raise UserInputError(Problem(Path(name), None, None, str(exc))) from None
    out.print(f"{escape(external_id)}: {result.status}" + (f" (席 {result.seat})" if result.seat else ""))


def _attendance_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line, external_id, attended|absent) from a CSV with 内定者ID and 当日の出欠 (or 出欠) columns."""
    from followup.cli.csvfiles import read_sheet

    text = read_sheet(path)
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    id_col = next((h for h in ID_HEADERS if h in fields), None)
    att_col = next((h for h in ATTENDANCE_HEADERS if h in fields), None)
    if id_col is None or att_col is None:
        raise UserInputError(Problem(path, 1, None, "列「内定者ID」と「当日の出欠」(出席/欠席) が必要です"))
    found, problems = [], []
    for line, record in enumerate(reader, start=2):
        value = (record.get(att_col) or "").strip()
        if not value or value == "未記録":
            continue
        if value not in ATTENDANCE_WORDS:
            problems.append(Problem(path, line, None, f"当日の出欠は 出席 か 欠席 です: {value!r}"))
            continue
        found.append((line, (record.get(id_col) or "").strip(), ATTENDANCE_WORDS[value]))
    if problems:
        raise UserInputError(problems)
    return found


def attendance_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The event's name under events:")],
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="内定者ID and 当日の出欠 (出席/欠席) columns; the exported 出欠一覧 works."
        ),
    ] = None,
    holder: Annotated[str | None, typer.Option("--holder", help="One holder's external_id")] = None,
    present: Annotated[bool | None, typer.Option("--present/--absent", help="With --holder")] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """当日の出欠を記録 — HR records who came (a CSV, e.g. the edited 出欠一覧, or one holder)."""
    from followup.cli.timeparse import parse_now
    from followup.events.store import record_attendance
    from followup.holders.importer import find_holder

    context: AppContext = ctx.obj
    _event(context, name)
    moment: datetime = parse_now(now, context)
    if csv_file is not None:
        entries = _attendance_rows(csv_file)
    elif holder is not None and present is not None:
        entries = [(0, holder, "attended" if present else "absent")]
    else:
        raise UserInputError(
            Problem(Path(name), None, None, "--csv FILE か --holder ID --present/--absent を指定してください")
        )
    changed = 0
    with context.session() as session:
        problems = []
        for line, external_id, value in entries:
            found = find_holder(session, external_id)
            if found is None:
                problems.append(
                    Problem(
                        csv_file or Path(external_id),
                        line or None,
                        None,
                        f"内定者ID {external_id!r} が見つかりません",
                    )
                )
                continue
            changed += record_attendance(session, found.id, name, value, at=moment)
        if problems:
            session.rollback()
            raise UserInputError(problems)
    out.print(f"{name}: 出欠 {changed}件を記録しました(変更なし {len(entries) - changed}件)")


def register(app: typer.Typer) -> None:
    events_app.command("list")(list_events)
    events_app.command("show")(show_event)
    events_app.command("rsvp")(rsvp_command)
    events_app.command("attendance")(attendance_command)
    app.add_typer(events_app, name="events")
