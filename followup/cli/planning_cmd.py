"""``followup plan``, ``simulate``, ``scheduler`` and ``touch log``: the planning area's commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from followup.errors import Problem, UserInputError
from followup.vocab import ACTIVE_STATUSES

if TYPE_CHECKING:
    from followup.calendar import BusinessCalendar
    from followup.config.context import AppContext
    from followup.config.schema import Policy
    from followup.planning.planner import HolderSnapshot
    from followup.planning.simulate import SimulationResult


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Plan as if it were this moment (ISO 8601; naive = organisation time zone)."),
]


class ManualChannel(StrEnum):
    phone = "phone"
    letter = "letter"
    meeting = "meeting"
    other = "other"


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserInputError(
            Problem(Path(option), None, None, f"bad date {text!r} (expected YYYY-MM-DD)")
        ) from None


def _parse_moment(text: str | None, option: str, context: AppContext) -> datetime:
    from followup.cli.timeparse import parse_now

    try:
        return parse_now(text, context)
    except UserInputError:
        raise UserInputError(
            Problem(
                Path(option), None, None, f"bad date-time {text!r} (ISO 8601, e.g. 2026-11-30T10:00+09:00)"
            )
        ) from None


def plan(ctx: typer.Context, now: NowOption = None) -> None:
    """Run one planning tick: create the touches now due within the horizon, move and cancel as needed.
    計画を1回実行します。同じ --now で2回実行しても、2回目は何も作成しません。"""
    from followup.cli.timeparse import parse_now
    from followup.planning.store import plan_tick

    context: AppContext = ctx.obj
    moment = parse_now(now, context)
    counts = plan_tick(context, moment)
    out.print(
        f"作成 {counts.created} 件、日時変更 {counts.moved} 件、中止 {counts.cancelled} 件、"
        f"チャネル変更 {counts.rechannelled} 件、スキップ {counts.skipped} 件 "
        f"(created {counts.created}, moved {counts.moved}, cancelled {counts.cancelled}) "
        f"at {moment.isoformat()}",
        markup=False,
        highlight=False,
    )
    for external_id, reason in counts.skipped_holders:
        out.print(f"  スキップ {external_id}: {reason}", markup=False, highlight=False)


def _names_from_csv(path: Path) -> dict[str, str]:
    from followup.holders.importer import read_holders_csv

    rows, _problems = read_holders_csv(path)
    return {row.external_id: row.name for row in rows}


def _snapshots_from_csv(path: Path) -> list[HolderSnapshot]:
    from followup.holders.importer import read_holders_csv
    from followup.planning.planner import HolderSnapshot

    rows, _problems = read_holders_csv(path)
    return [
        HolderSnapshot(
            id=index,
            external_id=row.external_id,
            track=row.track,
            department=row.department,
            status=row.status,
            offer_date=row.offer_date,
            accepted_date=row.accepted_date,
            start_date=row.start_date,
            reachable=frozenset(channel for channel, value in row.addresses().items() if value),
        )
        for index, row in enumerate(rows, start=1)
    ]


def _print_simulation(
    result: SimulationResult, calendar: BusinessCalendar, names: dict[str, str], phase_labels: dict[str, str]
) -> None:
    from followup.channels import MESSAGE_CHANNELS, channel_class
    from followup.labels import STATUS_LABELS, short_date

    phases: list[str] = []
    for counts in result.per_phase().values():
        phases.extend(p for p in counts if p not in phases and p != "manual")
    holders_table = Table(title="内定者ごと・フェーズごとの接点数", box=box.SIMPLE_HEAD)
    holders_table.add_column("氏名", no_wrap=True)
    holders_table.add_column("ID", no_wrap=True)
    for phase in phases:
        holders_table.add_column(phase_labels.get(phase, phase), justify="right", no_wrap=True)
    holders_table.add_column("手動", justify="right", no_wrap=True)
    holders_table.add_column("計", justify="right", no_wrap=True)
    holders_table.add_column("注意", overflow="fold")
    by_ext = {h.external_id: h for h in result.holders}
    for external_id, counts in result.per_phase().items():
        holder = by_ext[external_id]
        holders_table.add_row(
            escape(names.get(external_id, "")),
            escape(external_id),
            *(str(counts.get(p, 0)) for p in phases),
            str(counts.get("manual", 0)),
            str(sum(counts.values())),
            escape(
                "; ".join(sorted(result.skipped.get(holder.id, ())))
                or (
                    ""
                    if holder.status in ACTIVE_STATUSES
                    else STATUS_LABELS.get(holder.status, holder.status)
                )
            ),
        )
    out.print(holders_table)

    months = result.per_month()
    channels = tuple(MESSAGE_CHANNELS)
    columns = ("message", "survey", "manual", *channels, "phone", "letter", "total")
    month_table = Table(title="月ごとの接点数", box=box.SIMPLE_HEAD)
    month_table.add_column("月", no_wrap=True)
    labels = (
        "メッセージ",
        "アンケート",
        "手動",
        *(channel_class(c).label for c in channels),
        "電話",
        "手紙",
        "計",
    )
    for label in labels:
        month_table.add_column(label, justify="right", no_wrap=True)
    for month, counts in months.items():
        month_table.add_row(month, *(str(counts.get(c, 0)) for c in columns))
    out.print(month_table)

    out.print("接点カレンダー(1日ごとの接点数。· = なし、- = 休業日)")
    per_day = result.per_day()
    day = result.start.replace(day=1)
    header = Text("        ") + Text("".join(f"{d % 10}" for d in range(1, 32)), style="dim")
    out.print(header)
    while day <= result.end:
        line = Text(f"{day:%Y-%m} ")
        this_month = day.month
        while day.month == this_month:
            count = per_day.get(day, 0)
            if count:
                line.append("+" if count > 9 else str(count), style="bold green")
            elif not calendar.is_business_day(day):
                line.append("-", style="dim")
            else:
                line.append("·", style="dim")
            day += timedelta(days=1)
        out.print(line)
    touches = result.touches
    kinds = {k: sum(1 for t in touches if t.kind == k) for k in ("message", "survey", "manual")}
    out.print(
        f"{len(result.holders)} 名、{len(touches)} 件の接点"
        f"(メッセージ {kinds['message']}、アンケート {kinds['survey']}、手動 {kinds['manual']})、"
        f"{short_date(result.start)}〜{short_date(result.end)}。送信は行っていません。",
        markup=False,
        highlight=False,
    )


def simulate(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last day (YYYY-MM-DD).")],
    holders: Annotated[
        Path | None, typer.Option("--holders", help="Holders CSV (default: the imported holders).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the touch records to this file.")
    ] = None,
    policy_files: Annotated[
        list[Path] | None,
        typer.Option("--policy", help="Compare cadences: repeat for side by side (A.yaml, B.yaml)."),
    ] = None,
    arms: Annotated[
        bool, typer.Option("--arms", help="With --policy: outcomes per experiment arm (hash of the id).")
    ] = False,
) -> None:
    """Preview a whole season: which touches the cadences would create, per holder, phase and month.
    シーズン全体を早送りして、送信せずに接点の予定を表示します。"""
    from sqlalchemy import select

    from followup.calendar import BusinessCalendar
    from followup.db.models import OfferHolder
    from followup.planning.simulate import FlagTimeline, simulate_season
    from followup.planning.store import load_snapshots

    context: AppContext = ctx.obj
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    if last < first:
        raise UserInputError(Problem(Path("--end"), None, None, "the end date is before the start date"))
    policy = context.policy
    if holders is not None:
        snapshots = _snapshots_from_csv(holders)
        names = _names_from_csv(holders)
    else:
        with context.session() as session:
            snapshots, _ = load_snapshots(session, policy)
            names = dict(session.execute(select(OfferHolder.external_id, OfferHolder.name)).tuples().all())
    if not snapshots:
        err.print("内定者がいません (no holders): import a CSV or pass --holders", markup=False)
    if policy_files:
        from followup.cli.outcomes_cmd import compare_cadences

        compare_cadences(context, snapshots, policy_files, first, last, arms=arms, json_out=json_out)
        return
    calendar = BusinessCalendar.from_policy(policy)
    with Progress(
        TextColumn("シミュレーション"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("日"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("simulate", total=(last - first).days + 1)
        result = simulate_season(
            snapshots,
            policy,
            first,
            last,
            progress=lambda done, _total: progress.update(task, completed=done),
            calendar=calendar,
            observers=[FlagTimeline(policy)],
        )
    phase_labels = {p.name: p.label or p.name for c in policy.cadences.values() for p in c.phases}
    phase_labels.setdefault("task", "提出物のリマインド")
    _print_simulation(result, calendar, names, phase_labels)
    _print_event_touches(result, policy)
    _print_task_reminders(result, policy)
    _print_skipped(result)
    _print_simulated_flags(result, names)
    if json_out is not None:
        json_out.write_text(
            json.dumps(result.records(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        out.print(
            f"{len(result.records())} 件の記録を {json_out} に書き出しました", markup=False, highlight=False
        )


def _print_event_touches(result: SimulationResult, policy: Policy) -> None:
    """When each event's invitation goes to whom, and who of its audience gets none (and why)."""
    from followup.config.schema import EVENT_TOUCH_LABELS
    from followup.planning.planner import events_for

    for name, event in policy.events.items():
        for kind, _touch in event.touches():
            latest = event.latest(kind)
            label = EVENT_TOUCH_LABELS.get(kind, kind)
            sent: dict[date, list[str]] = {}
            got: set[int] = set()
            for touch in result.touches:
                if touch.event == name and touch.phase == "event" and touch.seq <= -100:
                    sent.setdefault(touch.due_at.date(), []).append(touch.external_id)
                    got.add(touch.holder_id)
            table = Table(
                title=f"{event.title}の{label} ({name} {kind}: {event.anchor(kind)}、"
                f"締切 {latest.isoformat()}、開催 {event.starts_at.date().isoformat()})",
                box=box.SIMPLE_HEAD,
            )
            table.add_column("送信日", no_wrap=True)
            table.add_column("人数", justify="right")
            table.add_column("内定者", overflow="fold")
            for day in sorted(sent):
                table.add_row(day.isoformat(), str(len(sent[day])), ", ".join(sorted(sent[day])))
            for holder in result.holders:
                if holder.id in got or holder.status not in ("offered", "accepted"):
                    continue
                if name not in dict(events_for(policy, holder.track, holder.department)):
                    continue  # not in the audience
                if result.skipped.get(holder.id):
                    why = "; ".join(sorted(result.skipped[holder.id]))
                elif holder.offer_date > latest:
                    why = "締切後の内定のため案内なし"
                elif event.starts_at.date() >= holder.start_date:
                    why = "開催日には入社済みのため案内なし"
                else:
                    why = "シミュレーション期間外"
                table.add_row("未送信", "1", f"{holder.external_id}: {why}")
            out.print(table)


def _print_task_reminders(result: SimulationResult, policy: Policy) -> None:
    """When each task's reminders would go and to how many (the simulation treats everyone as 未提出:
    a holder marked 提出済 gets none)."""
    for name, task in policy.tasks.items():
        if not task.remind:
            continue
        sent: dict[date, list[str]] = {}
        for touch in result.touches:
            if touch.task == name:
                sent.setdefault(touch.due_at.date(), []).append(touch.external_id)
        remind = "・".join(str(r) for r in task.remind)
        table = Table(
            title=f"{task.title}のリマインド ({name}: 期限 {task.due}、期限から {remind}、未提出の方のみ)",
            box=box.SIMPLE_HEAD,
        )
        table.add_column("送信日", no_wrap=True)
        table.add_column("人数", justify="right")
        table.add_column("内定者", overflow="fold")
        for day in sorted(sent):
            table.add_row(day.isoformat(), str(len(sent[day])), ", ".join(sorted(sent[day])))
        if not sent:
            table.add_row("—", "0", "期間内に送るリマインドはありません")
        out.print(table)


def _print_skipped(result: SimulationResult) -> None:
    """Holders the planner skipped (no cadence, no reachable channel), by name, with the reason."""
    by_id = {h.id: h for h in result.holders}
    rows = [(by_id[hid].external_id, reason) for hid, reasons in result.skipped.items() for reason in reasons]
    if not rows:
        return
    table = Table(title=f"スキップされた内定者 {len({r[0] for r in rows})}名 (skipped holders)")
    table.add_column("内定者", no_wrap=True)
    table.add_column("理由", overflow="fold")
    for external_id, reason in sorted(rows):
        table.add_row(external_id, reason)
    out.print(table)


def _print_simulated_flags(result: SimulationResult, names: dict[str, str]) -> None:
    """When the cadence itself would raise a flag (neglect, over-contact, no reachable channel)."""
    from followup.labels import RULE_LABELS, SEVERITY_LABELS, short_date

    if not result.notes:
        out.print("このケイデンスでは、放置・過剰連絡・連絡不能のフラグは立ちません。")
        return
    table = Table(title="フラグが立つ時期")
    for column in ("週次レポート", "氏名", "ID", "フラグ", "重要度", "理由"):
        table.add_column(column, overflow="fold")
    for note in sorted(result.notes, key=lambda n: (n["since"], n["external_id"])):
        table.add_row(
            short_date(date.fromisoformat(note["since"][:10])),
            escape(names.get(note["external_id"], "")),
            escape(note["external_id"]),
            RULE_LABELS.get(note["rule"], note["rule"]),
            SEVERITY_LABELS.get(note["severity"], note["severity"]),
            escape(note["reason"]),
        )
    out.print(table)


def scheduler(
    ctx: typer.Context,
    owner: Annotated[
        str | None, typer.Option("--owner", help="This process's name for the lease (default host:pid).")
    ] = None,
) -> None:
    """Run the scheduler: plan every few minutes, dispatch due touches, send the weekly report.
    複数起動しても、作業するのは1つだけです (a database lease)。"""
    from followup.ops.audit import record_policy
    from followup.ops.logs import configure_logging
    from workers.scheduler import run_scheduler

    context: AppContext = ctx.obj
    context.loaded  # noqa: B018 (fail with FILE:LINE:COL before starting)
    configure_logging(json_lines=context.settings.log_json)
    with context.session() as session:
        record_policy(session, context.loaded, now=datetime.now(context.policy.organization.tz))
    run_scheduler(context, owner)


touch_app = typer.Typer(help="Manual touches: log a phone call, letter or meeting. 手動の接点を記録します。")


@touch_app.command("log")
def touch_log(
    ctx: typer.Context,
    external_id: Annotated[str, typer.Argument(help="The holder's external id.")],
    channel: Annotated[ManualChannel, typer.Option("--channel", help="How the holder was contacted.")],
    at: Annotated[str | None, typer.Option("--at", help="When (ISO 8601; default now).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="What was said or done.")] = None,
) -> None:
    """Record that a person contacted the holder: completes the due manual touch on that channel,
    or records an ad-hoc one. 社長の電話・手書きの手紙などを実施済みにします。"""
    from sqlalchemy import select

    from followup.db.models import OfferHolder
    from followup.holders.actions import log_touch

    context: AppContext = ctx.obj
    moment = _parse_moment(at, "--at", context)
    tz = context.policy.organization.tz
    with context.session() as session:
        holder = session.scalar(select(OfferHolder).where(OfferHolder.external_id == external_id))
        if holder is None:
            raise UserInputError(
                Problem(Path(external_id), None, None, "unknown offer holder (内定者が見つかりません)")
            )
        touch, completed = log_touch(
            session, holder, channel.value, at=moment, tz=tz, note=note, actor="cli", now=datetime.now(UTC)
        )
        if completed:
            action = f"{touch.phase} の予定 ({touch.key}) を実施済みにしました"
        else:
            action = "予定外の接点として記録しました (ad-hoc touch)"
    out.print(
        f"{external_id}: {channel.value} — {action} ({moment.isoformat()})", markup=False, highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("simulate")(simulate)
    app.command("scheduler")(scheduler)
    app.add_typer(touch_app, name="touch")
