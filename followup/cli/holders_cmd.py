"""``followup import-holders`` and ``followup holders list|show|set-status|set-start-date``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from followup.channels import channel_classes
from followup.cli.timeparse import parse_now
from followup.config.context import AppContext
from followup.db.models import OfferHolder
from followup.errors import Problem, UserInputError
from followup.holders.importer import (
    change_start_date,
    change_status,
    find_holder,
    import_holders,
    read_holders_csv,
)
from followup.holders.timeline import holder_record
from followup.labels import STATUS_LABELS, TIMELINE_LABELS
from followup.vocab import HOLDER_STATUSES

out = Console()
err = Console(stderr=True, soft_wrap=True)
holders_app = typer.Typer(
    help="List offer holders (the default), show one with its timeline, change status or start date."
)


def _require_holder(context: AppContext, session: Any, external_id: str) -> OfferHolder:
    holder = find_holder(session, external_id)
    if holder is None:
        raise UserInputError(Problem(Path(external_id), None, None, "no offer holder with this external_id"))
    return holder


PAGE = 1000


def iter_holder_records(
    session: Session, status: str | None, *, page: int = PAGE
) -> Iterator[dict[str, Any]]:
    """Every holder's record in external_id order, read in keyset pages of ``page`` holders (the
    identity map is emptied after each page, so memory stays flat however many holders there are)."""
    last: str | None = None
    while True:
        query = (
            select(OfferHolder).options(selectinload(OfferHolder.opt_outs)).order_by(OfferHolder.external_id)
        )
        if status:
            query = query.where(OfferHolder.status == status)
        if last is not None:
            query = query.where(OfferHolder.external_id > last)
        holders = list(session.scalars(query.limit(page)))
        if not holders:
            return
        for holder in holders:
            yield holder_record(holder, [o.channel for o in holder.opt_outs])
        last = holders[-1].external_id
        session.expunge_all()
        if len(holders) < page:
            return


def register(app: typer.Typer) -> None:
    @app.command("import-holders")
    def import_holders_command(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="CSV export from the ATS (UTF-8, UTF-8 with BOM or CP932)."),
        skip_invalid: bool = typer.Option(
            False, "--skip-invalid", help="Import the good rows, report the rest."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Create or update offer holders from a CSV file, matched by external_id.

        Columns: external_id,name,email,line_user_id,slack_user_id,track,department,offer_date,start_date,
        status,mentor_email (Japanese headers such as 氏名, メールアドレス, 内定日, 入社予定日 work too).
        Any bad row is reported as FILE:LINE: message and nothing is imported (exit status 2), unless
        --skip-invalid is given.
        """
        context: AppContext = ctx.obj
        rows, problems = read_holders_csv(file, skip_invalid=skip_invalid)
        now = parse_now(None, context)
        with context.session() as session:
            summary = import_holders(session, rows, now=now, source=f"import:{file.name}")
        skipped = len({problem.line for problem in problems})
        for external_id in summary.erased:
            err.print(f"skipped {external_id}: personal data was erased on request (not re-imported)")
        for problem in problems:
            err.print(f"skipped {problem}", markup=False, highlight=False)
        if as_json:
            out.print_json(
                json.dumps({**summary.__dict__, "erased": list(summary.erased), "skipped": skipped})
            )
        else:
            out.print(
                f"imported {file}: created {summary.created}, updated {summary.updated}, "
                f"unchanged {summary.unchanged}" + (f", skipped {skipped} rows" if skipped else "")
            )

    @holders_app.command("list")
    def list_holders(
        ctx: typer.Context,
        status: str | None = typer.Option(None, help=f"Only this status ({', '.join(HOLDER_STATUSES)})."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
    ) -> None:
        """List offer holders with status, track and dates."""
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
                separator = "[\n"
                for record in iter_holder_records(session, status):
                    write(separator + json.dumps(record, ensure_ascii=False))
                    separator = ",\n"
                write("[]\n" if separator == "[\n" else "\n]\n")
            return
        with context.session() as session:
            records = list(iter_holder_records(session, status))
        table = Table(title=f"内定者 {len(records)}名")
        for column in ("ID", "氏名", "区分", "部署", "内定日", "入社予定日", "状態", "連絡手段"):
            table.add_column(column)
        for r in records:
            channels = [c.label for c in channel_classes() if r.get(c.address_field)]
            table.add_row(
                r["external_id"],
                r["name"],
                r["track"],
                r["department"] or "",
                r["offer_date"],
                r["start_date"],
                STATUS_LABELS.get(r["status"], r["status"]),
                "/".join(channels),
            )
        out.print(table)

    @holders_app.command("show")
    def show_holder(
        ctx: typer.Context,
        external_id: str,
        as_json: bool = typer.Option(False, "--json", help="Print the holder and timeline as JSON."),
    ) -> None:
        """Show one offer holder with the timeline: touches, answers, replies, status changes, flags."""
        from followup.holders.timeline import holder_timeline

        context: AppContext = ctx.obj
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            record = holder_timeline(session, holder)
        if as_json:
            out.print_json(json.dumps(record, ensure_ascii=False, default=str))
            return
        h = record["holder"]
        out.print(
            f"[bold]{h['name']}[/] ({h['external_id']}) {h['track']} {h['department'] or ''} — "
            f"{STATUS_LABELS.get(h['status'], h['status'])}, 内定 {h['offer_date']} → 入社 {h['start_date']}"
        )
        tz = context.policy.organization.tz
        table = Table(title="タイムライン (timeline)")
        for column in ("日時", "種類", "内容", "状態"):
            table.add_column(column, overflow="fold")
        for item in record.get("items", []):
            at = (
                datetime.fromisoformat(item["at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M")
                if item.get("at")
                else ""
            )
            table.add_row(
                at,
                TIMELINE_LABELS.get(item.get("type", ""), item.get("type", "")),
                str(item.get("summary", "")),
                str(item.get("status", "") or ""),
            )
        out.print(table)

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
        context: AppContext = ctx.obj
        when = parse_now(at, context)
        with context.session() as session:
            holder = _require_holder(context, session, external_id)
            try:
                change_status(session, holder, status, at=when, reason=reason, source="cli")
            except ValueError as exc:
                raise UserInputError(Problem(Path(external_id), None, None, str(exc))) from None
        out.print(f"{external_id}: status {status}")

    @holders_app.command("set-start-date")
    def set_start_date(
        ctx: typer.Context,
        external_id: str,
        start_date: str = typer.Argument(..., help="New start date, e.g. 2027-04-01."),
        at: str | None = typer.Option(None, help="When the change was made (ISO 8601; default now)."),
    ) -> None:
        """Change the start date; future touches move on the next planning tick."""
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
        out.print(f"{external_id}: start date {new_date}")

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
        out.print(f"{external_id}: personal data erased (now {pseudonym})")

    @holders_app.callback(invoke_without_command=True)
    def holders_default(ctx: typer.Context) -> None:
        """`followup holders` alone lists everyone, like `followup holders list`."""
        if ctx.invoked_subcommand is None:
            list_holders(ctx, status=None, as_json=False)

    app.add_typer(holders_app, name="holders")
