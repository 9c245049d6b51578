"""``followup import-holders`` and ``followup holders list|show|set-status|set-start-date``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from followup.errors import Problem, UserInputError
from followup.vocab import HOLDER_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from followup.config.context import AppContext
    from followup.db.models import OfferHolder


out = Console()
err = Console(stderr=True, soft_wrap=True)
holders_app = typer.Typer(
    help="List offer holders (the default), show one with its timeline, change status or start date."
)


def add_touch_labels(context: AppContext, holder: OfferHolder, record: dict[str, Any]) -> None:
    """Each timeline item gets a ``label`` a person reads: the message's subject (not its template
    id), the flag's Japanese name, the channel in Japanese."""
    from followup.delivery.timeline_labels import timeline_labels

    timeline_labels(context, holder, record)


def _require_holder(context: AppContext, session: Any, external_id: str) -> OfferHolder:
    from followup.holders.importer import find_holder

    holder = find_holder(session, external_id)
    if holder is None:
        raise UserInputError(Problem(Path(external_id), None, None, "no offer holder with this external_id"))
    return holder


PAGE = 1000
TABLE_ROWS = 1000  # the table form shows at most this many holders (then a note); --json lists all


def iter_holder_records(
    session: Session, status: str | None, *, page: int = PAGE
) -> Iterator[dict[str, Any]]:
    """Every holder's record in external_id order, read in keyset pages of ``page`` plain rows (only
    the record's columns, and one query for the page's opt-outs), so memory stays flat however many
    holders there are and no ORM object is built."""
    from sqlalchemy import select

    from followup.db.models import ChannelOptOut, OfferHolder
    from followup.holders.timeline import holder_record, holder_record_columns

    columns = holder_record_columns()
    last: str | None = None
    while True:
        query = select(*columns).order_by(OfferHolder.external_id)
        if status:
            query = query.where(OfferHolder.status == status)
        if last is not None:
            query = query.where(OfferHolder.external_id > last)
        rows = session.execute(query.limit(page)).all()
        if not rows:
            return
        opted_out: dict[int, list[str]] = {}
        for holder_id, channel in session.execute(
            select(ChannelOptOut.holder_id, ChannelOptOut.channel).where(
                ChannelOptOut.holder_id.in_([row.id for row in rows])  # ≤ page bind parameters
            )
        ):
            opted_out.setdefault(holder_id, []).append(channel)
        for row in rows:
            yield holder_record(row, opted_out.get(row.id, []))
        last = rows[-1].external_id
        if len(rows) < page:
            return


def _pool_warnings(file: Path, rows: list[Any], context: AppContext, now: datetime) -> list[str]:
    """Rejected rows whose rejection mail will not go: the pool is off, or the 不採用日 is too old."""
    from followup.calendar import BusinessCalendar
    from followup.planning.planner import catch_up_floor

    rejected = [r for r in rows if r.status == "rejected" and r.rejected_date is not None]
    if not rejected:
        return []
    policy = context.policy
    if not policy.pool.enabled:
        return [
            f"{file}: 不採用 {len(rejected)}名を取り込みますが、pool.enabled が false のため"
            "選考結果のご連絡は送られません (the talent pool is off: no rejection mail goes)"
        ]
    floor = catch_up_floor(now, policy, BusinessCalendar.from_policy(policy)).astimezone(
        policy.organization.tz
    )
    old = [r for r in rejected if r.rejected_date < floor.date()]
    if not old:
        return []
    lines = ", ".join(str(r.line) for r in old[:10]) + (" …" if len(old) > 10 else "")
    return [
        f"{file}: 不採用日が {floor.date().isoformat()} より前の {len(old)}名(行 {lines})には、"
        "選考結果のご連絡は自動では送られません "
        "(rejection date older than scheduler.catch_up: no rejection mail)"
    ]


def register(app: typer.Typer) -> None:
    @app.command("import-holders")
    def import_holders_command(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="CSV export from the ATS (UTF-8, UTF-8 with BOM or CP932)."),
        skip_invalid: bool = typer.Option(
            False, "--skip-invalid", help="Import the good rows, report the rest."
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Refuse columns that map to no field (default: ignore them, warn once)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print what would be created / updated / cancelled; write nothing."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Create or update offer holders from a CSV file, matched by external_id.

        Columns: external_id,name,email,line_user_id,slack_user_id,track,department,offer_date,start_date,
        status,mentor_email (Japanese headers such as 氏名, メールアドレス, 内定日, 入社予定日 work too;
        import.columns in the YAML maps an ATS's own headers). Other columns are ignored with one warning
        (--strict refuses them). Any bad row is reported as FILE:LINE: message and nothing is imported
        (exit status 2), unless --skip-invalid is given.
        """
        from followup.cli.timeparse import parse_now
        from followup.holders.importer import (
            import_holders,
            no_cadence_rows,
            pending_touches_of,
            read_holders_file,
        )

        context: AppContext = ctx.obj
        policy = context.policy
        read = read_holders_file(
            file, skip_invalid=skip_invalid, strict=strict, column_map=dict(policy.import_.columns)
        )
        rows, problems = read.rows, read.problems
        now = parse_now(None, context)
        warnings: list[str] = []
        if read.ignored_columns:
            warnings.append(
                f"{file}:1: 次の列は使われないため無視しました (ignored columns): "
                + ", ".join(read.ignored_columns)
                + " — 必要なら import.columns で項目に割り当ててください (--strict で取り込みを中止)"
            )
        for line in read.no_contact:
            warnings.append(
                f"{file}:{line}: 連絡先(email / LINE / Slack)がありません。取り込みましたが連絡不可"
                "(unreachable)のフラグが立ちます (no contact channel: imported, flagged unreachable)"
            )
        for row, message in no_cadence_rows(rows, policy):
            warnings.append(f"{file}:{row.line}: {row.external_id}: {message}")
        warnings.extend(_pool_warnings(file, rows, context, now))
        with context.session() as session:
            summary = import_holders(session, rows, now=now, source=f"import:{file.name}")
            cancelled = pending_touches_of(session, summary.ended) if summary.ended else 0
            if dry_run:
                session.rollback()
        skipped = len({problem.line for problem in problems})
        for warning in warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
        for external_id in summary.erased:
            err.print(
                f"skipped {external_id}: personal data was erased on request (not re-imported)",
                markup=False,
                highlight=False,
            )
        for problem in problems:
            err.print(f"skipped {problem}", markup=False, highlight=False)
        if as_json:
            record = {
                "created": summary.created,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "erased": list(summary.erased),
                "skipped": skipped,
                "cancelled": cancelled,
                "dry_run": dry_run,
                "details": [{"external_id": e, "change": c} for e, c in summary.details],
                "ignored_columns": list(read.ignored_columns),
            }
            out.print_json(json.dumps(record, ensure_ascii=False))
            return
        if dry_run:
            for external_id, change in summary.details:
                out.print(f"  {external_id}: {change}", markup=False, highlight=False)
        pool_rows = [r for r in rows if r.status == "rejected"]
        if pool_rows or summary.reapplied:
            consented = sum(1 for r in pool_rows if r.consent or (r.consent is None and r.consent_date))
            out.print(
                f"人材プール: 不採用 {len(pool_rows)}名(うち連絡への同意あり {consented}名)、"
                f"再応募 {summary.reapplied}名",
                markup=False,
                highlight=False,
            )
        verb = "would import (dry run, nothing written)" if dry_run else "imported"
        out.print(
            f"{verb} {file}: created {summary.created}, updated {summary.updated}, "
            f"unchanged {summary.unchanged}, cancelled {cancelled} pending touches"
            + (f", skipped {skipped} rows" if skipped else ""),
            markup=False,
            highlight=False,
        )

    @holders_app.command("list")
    def list_holders(
        ctx: typer.Context,
        status: str | None = typer.Option(None, help=f"Only this status ({', '.join(HOLDER_STATUSES)})."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
    ) -> None:
        """List offer holders with status, track and dates."""
        from followup.channels import channel_classes
        from followup.labels import STATUS_LABELS, TRACK_LABELS, label, short_date

        if status is not None and status not in HOLDER_STATUSES:
            raise UserInputError(
                Problem(
                    Path("--status"),
                    None,
                    None,
                    f"unknown status {status!r}; use one of: {', '.join(HOLDER_STATUSES)}",
                )
            )
        context: AppContext = ctx.obj
        if as_json:  # streamed: one page of holders in memory at a time, records written as they come
            with context.session() as session:
                write = sys.stdout.write
                encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps' output, one encoder
                separator = "[\n"
                for record in iter_holder_records(session, status):
                    write(separator + encode(record))
                    separator = ",\n"
                write("[]\n" if separator == "[\n" else "\n]\n")
            return
        from itertools import islice

        from sqlalchemy import func, select

        from followup.db.models import OfferHolder

        with context.session() as session:  # a screenful, not a 100k-row table built in memory
            counted = select(func.count()).select_from(OfferHolder)
            if status:
                counted = counted.where(OfferHolder.status == status)
            total = session.scalar(counted) or 0
            records = list(islice(iter_holder_records(session, status), TABLE_ROWS))
        table = Table(title=f"内定者 {total}名")
        for column in ("ID", "氏名", "区分", "部署", "内定日", "入社予定日", "ステータス", "連絡手段"):
            table.add_column(column)
        for r in records:
            channels = [c.label for c in channel_classes() if r.get(c.address_field)]
            table.add_row(  # holder data is text, never Rich markup (a name like "[/bold]")
                *(
                    escape(str(value))
                    for value in (
                        r["external_id"],
                        r["name"],
                        label(TRACK_LABELS, r["track"]),
                        r["department"] or "",
                        short_date(date.fromisoformat(r["offer_date"])),
                        short_date(date.fromisoformat(r["start_date"])),
                        STATUS_LABELS.get(r["status"], r["status"]),
                        "/".join(channels),
                    )
                )
            )
        out.print(table)
        if total > len(records):
            out.print(
                f"先頭 {len(records)}名を表示(全 {total}名)— 全件は --json、絞り込みは --status"
                f" — showing the first {len(records)} of {total}",
                markup=False,
                highlight=False,
            )

    @holders_app.command("show")
    def show_holder(
        ctx: typer.Context,
        external_id: str,
        as_json: bool = typer.Option(False, "--json", help="Print the holder and timeline as JSON."),
    ) -> None:
        """Show one offer holder with the timeline: touches, answers, replies, status changes, flags."""
        from followup.holders.timeline import holder_timeline
        from followup.labels import (
            STATUS_LABELS,
            TIMELINE_LABELS,
            TOUCH_STATUS_LABELS,
            TRACK_LABELS,
            label,
            short_date,
            short_datetime,
        )

        context: AppContext = ctx.obj
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            record = holder_timeline(session, holder, context.policy)
            add_touch_labels(context, holder, record)
        if as_json:
            out.print_json(json.dumps(record, ensure_ascii=False, default=str))
            return
        h = record["holder"]
        out.print(
            f"[bold]{escape(str(h['name']))}[/] "
            + escape(
                f"({h['external_id']}) {label(TRACK_LABELS, h['track'])} "
                f"{h['department'] or ''} — {STATUS_LABELS.get(h['status'], h['status'])}、"
                f"内定日 {short_date(date.fromisoformat(h['offer_date']))} → "
                f"入社予定日 {short_date(date.fromisoformat(h['start_date']))}"
            )
        )
        tz = context.policy.organization.tz
        table = Table(title="タイムライン")
        for column in ("日時", "種類", "内容", "状態"):
            table.add_column(column, overflow="fold")
        for item in record.get("items", []):
            at = short_datetime(datetime.fromisoformat(item["at"]).astimezone(tz)) if item.get("at") else ""
            table.add_row(
                at,
                escape(str(TIMELINE_LABELS.get(item.get("type", ""), item.get("type", "")))),
                escape(str(item.get("label") or item.get("summary", ""))),
                escape(label(TOUCH_STATUS_LABELS, item.get("status") or "")),
            )
        out.print(table)
        if record.get("tasks"):
            tasks = Table(title="提出物")
            for column in ("提出物", "期限", "状況", "メモ"):
                tasks.add_column(column, overflow="fold")
            for task in record["tasks"]:
                due = short_date(date.fromisoformat(task["due"])) if task["due"] else "—"
                tasks.add_row(escape(task["title"]), due, task["status_label"], escape(task["note"] or ""))
            out.print(tasks)

    @holders_app.command("set-status")
    def set_status(
        ctx: typer.Context,
        external_id: str,
        status: str = typer.Argument(..., help="accepted, joined, declined or withdrawn."),
        reason: str | None = typer.Option(
            None, help="Why (for declined / withdrawn), e.g. 他社に入社を決めた."
        ),
        at: str | None = typer.Option(None, help="When (ISO 8601; default now)."),
    ) -> None:
        """Record a lifecycle change; declining, withdrawal or joining cancels pending touches."""
        from followup.cli.timeparse import parse_now
        from followup.holders.importer import change_status

        context: AppContext = ctx.obj
        when = parse_now(at, context)
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            try:
                change_status(session, holder, status, at=when, reason=reason, source="cli")
            except ValueError as exc:
                raise UserInputError(Problem(Path(external_id), None, None, str(exc))) from None
        out.print(f"{external_id}: status {status}", markup=False)

    @holders_app.command("set-start-date")
    def set_start_date(
        ctx: typer.Context,
        external_id: str,
        start_date: str = typer.Argument(..., help="New start date, e.g. 2027-04-01."),
        at: str | None = typer.Option(None, help="When the change was made (ISO 8601; default now)."),
    ) -> None:
        """Change the start date; future touches move on the next planning tick."""
        from followup.cli.timeparse import parse_now
        from followup.holders.importer import change_start_date

        context: AppContext = ctx.obj
        when = parse_now(at, context)
        try:
            new_date = date.fromisoformat(start_date)
        except ValueError:
            raise UserInputError(Problem(Path(external_id), None, None, f"bad date {start_date!r}")) from None
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            try:
                change_start_date(session, holder, new_date, at=when, source="cli")
            except ValueError as exc:
                raise UserInputError(Problem(Path(external_id), None, None, str(exc))) from None
        out.print(f"{external_id}: start date {new_date}", markup=False)

    @holders_app.command("erase")
    def erase(
        ctx: typer.Context,
        external_id: str,
        yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
    ) -> None:
        """Delete one holder's personal data on request (個人情報保護法), keeping anonymous counts."""
        from followup.holders.erasure import erase_holder

        context: AppContext = ctx.obj
        if not yes:
            raise UserInputError(
                Problem(Path(external_id), None, None, "add --yes to erase this holder's data")
            )
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            pseudonym = erase_holder(
                session, holder, context.policy, now=datetime.now().astimezone(), actor="cli"
            )
        out.print(f"{external_id}: personal data erased (now {pseudonym})", markup=False)

    @holders_app.callback(invoke_without_command=True)
    def holders_default(ctx: typer.Context) -> None:
        """`followup holders` alone lists everyone, like `followup holders list`."""
        if ctx.invoked_subcommand is None:
            list_holders(ctx, status=None, as_json=False)

    app.add_typer(holders_app, name="holders")
