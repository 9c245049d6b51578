"""``followup announce TEMPLATE --to track=new_grad``: 一斉配信 — preview who gets a message on which channel
and when, then (``--yes`` or a confirmation) plan one touch per recipient, delivered like any other.

Nothing is written without the confirmation; a second run of the same announcement plans only holders it
did not reach before (key ``announce:<name>:<external_id>``). A missing template or one that does not
render for the first recipient is refused (exit 2) before anything is planned.
"""

from __future__ import annotations

import json
import sys
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
    from followup.planning.announce import Preview, Recipient


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
SHOWN = 30  # recipients listed in the preview table (all of them with --json)


def _problem(where: str, message: str) -> UserInputError:
    return UserInputError(Problem(Path(where), None, None, message))


def _check_template(context: AppContext, template: str, result: Preview, at: datetime) -> bool:
    """Refuse a template that does not exist or does not render; True when it is an essential notice."""
    from followup.delivery.samples import SampleTouch, check_announcement
    from followup.rendering.templates import TemplateProblem

    first = next(iter(result.to_plan), None)
    sample = (
        SampleTouch(
            first.candidate.id,
            first.key,
            first.candidate.cadence,
            first.candidate.phase,
            first.channel,
            first.due_at,
        )
        if first is not None
        else None
    )
    try:
        return check_announcement(context, template, sample, at)
    except TemplateProblem as exc:
        raise UserInputError(Problem(exc.path, exc.line, None, exc.message)) from None


def _record(r: Recipient) -> dict[str, object]:
    return {
        "external_id": r.candidate.external_id,
        "name": r.candidate.name,
        "track": r.candidate.track,
        "department": r.candidate.department,
        "channel": r.channel,
        "due_at": r.due_at.isoformat(),
        "key": r.key,
        "status": "already_planned" if r.already else ("unreachable" if r.channel is None else "to_plan"),
    }


def _print_preview(result: Preview, context: AppContext) -> None:
    from followup.labels import CHANNEL_LABELS, short_datetime

    tz = context.policy.organization.tz
    plan = result.to_plan
    per_channel = "、".join(
        f"{CHANNEL_LABELS.get(c, c)} {n}件" for c, n in sorted(result.per_channel().items())
    )
    out.print(
        f"一斉配信「{escape(result.name)}」(テンプレート {escape(result.template)}): "
        f"送信予定 {len(plan)}件" + (f"({per_channel})" if per_channel else ""),
        highlight=False,
    )
    if plan:
        times = sorted({r.due_at for r in plan})
        first, last = short_datetime(times[0].astimezone(tz)), short_datetime(times[-1].astimezone(tz))
        out.print(f"送信日時: {first}" + (f" 〜 {last}" if last != first else ""), highlight=False)
    if result.unreachable:
        out.print(f"連絡できるチャネルなし: {len(result.unreachable)}件(送信しません)", highlight=False)
    if result.already:
        out.print(f"予約済み(前回の実行): {len(result.already)}件(重ねて送りません)", highlight=False)
    table = Table("内定者ID", "氏名", "チャネル", "送信日時", "備考")
    for r in list(result.recipients)[:SHOWN]:
        table.add_row(
            escape(r.candidate.external_id),
            escape(r.candidate.name),
            CHANNEL_LABELS.get(r.channel, r.channel) if r.channel else "—",
            short_datetime(r.due_at.astimezone(tz)),
            r.reason,
        )
    if result.recipients:
        out.print(table)
    if len(result.recipients) > SHOWN:
        out.print(f"ほか {len(result.recipients) - SHOWN}名(--json ですべて表示)", highlight=False)


def announce(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="The message template (templates/messages/<locale>/NAME).")],
    to: Annotated[
        list[str],
        typer.Option("--to", help="Who: KEY=VALUE, KEY one of track, department, status, external_id."),
    ],
    at: Annotated[
        str | None, typer.Option("--at", help="When (ISO 8601; default now; moved into the send window).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The announcement's name (default: the template); reuse it to resume."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Plan it without asking.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the preview (and result) as JSON.")] = False,
    now_text: Annotated[
        str | None, typer.Option("--now", help="Act as if it were this moment (ISO).")
    ] = None,
) -> None:
    """一斉配信 — preview, then plan one message per selected holder (calendar, opt-outs, caps, once)."""
    from followup.calendar import BusinessCalendar
    from followup.cli.timeparse import parse_now
    from followup.planning.announce import NAME, FilterError, parse_filters, preview
    from followup.planning.announce_store import load_candidates, plan_announcement, planned_keys

    context: AppContext = ctx.obj
    policy = context.policy
    try:
        filters = parse_filters(to)
    except FilterError as exc:
        raise _problem("--to", str(exc)) from None
    announcement = name or template
    if not NAME.match(announcement):
        raise _problem("--name", f"bad announcement name {announcement!r}: letters, digits, _ . - (≤ 64)")
    now = parse_now(now_text, context)
    moment = parse_now(at, context) if at is not None else now
    moment = max(moment, now)  # never "in the past": a late --at goes now (inside the send window)
    calendar = BusinessCalendar.from_policy(policy)
    with context.session() as session:
        candidates = load_candidates(session, policy, now)
        already = planned_keys(session, announcement)
    result = preview(announcement, template, candidates, filters, moment, calendar, already)
    essential = _check_template(context, template, result, moment)
    if essential:  # an essential notice (入社手続き) reaches holders who opted out of follow-up too
        result = preview(
            announcement, template, candidates, filters, moment, calendar, already, essential=True
        )

    record: dict[str, object] = {
        "announcement": announcement,
        "template": template,
        "recipients": [_record(r) for r in result.recipients],
        "to_plan": len(result.to_plan),
        "per_channel": dict(result.per_channel()),
    }
    if not as_json:
        _print_preview(result, context)
    if not result.to_plan:
        if as_json:
            typer.echo(json.dumps({**record, "planned": 0}, ensure_ascii=False, indent=2))
        else:
            out.print("送信する相手がいません(何も予約していません)。", highlight=False)
        return
    if not yes:
        if as_json or not sys.stdin.isatty():
            if as_json:
                typer.echo(json.dumps({**record, "planned": 0}, ensure_ascii=False, indent=2))
            err.print("確認のため、まだ何も予約していません。送るときは --yes を付けて実行してください。")
            return
        if not typer.confirm(f"{len(result.to_plan)}件を予約します。よろしいですか?", default=False):
            out.print("取りやめました(何も予約していません)。", highlight=False)
            return
    with context.session() as session:
        planned = plan_announcement(session, result)
    if as_json:
        typer.echo(json.dumps({**record, "planned": planned}, ensure_ascii=False, indent=2))
    else:
        out.print(
            f"{planned}件を予約しました。`followup run` (またはスケジューラ) が送信時刻に送ります。",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("announce")(announce)
