"""``followup pool list`` / ``followup pool show ID``: the talent pool (人材プール) as HR reads it.

The list has its own filters (不採用・辞退, 同意の有無): the pool is not offer follow-up, so it is kept
out of ``followup holders`` views of the season's figures and shown here instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from followup.errors import Problem, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext


pool_app = typer.Typer(help="人材プール(不採用・辞退の方)— the talent pool", no_args_is_help=True)
out = Console(soft_wrap=True)
SOURCE_LABELS = {"import": "取り込み", "web": "ページで同意"}
STEP_LABELS = {"rejection": "選考結果のご連絡", "follow_up": "1か月後のご挨拶", "news": "近況・募集のご案内"}


def _rows(context: AppContext, external_id: str | None = None) -> list[dict[str, Any]]:
    from followup.pool.store import pool_rows

    with context.session() as session:
        return pool_rows(session, context.policy, external_id)


def _consent(row: dict[str, Any]) -> str:
    if not row["consent_date"]:
        return "なし"
    return f"{row['consent_date']}({SOURCE_LABELS.get(row['consent_source'], row['consent_source'] or '')})"


def list_pool(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="rejected (不採用) or declined (辞退) only.")] = None,
    consented: Annotated[
        bool | None, typer.Option("--consented/--no-consent", help="Only with / without consent.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """人材プールの一覧 — everyone in the pool: consent, opt-outs, last and next pool mail."""
    from followup.labels import STATUS_LABELS

    context: AppContext = ctx.obj
    if status is not None and status not in context.policy.pool.statuses:
        raise UserInputError(
            Problem(Path("--status"), None, None, f"unknown status {status!r}; use rejected or declined")
        )
    rows = [
        r
        for r in _rows(context)
        if (status is None or r["status"] == status)
        and (consented is None or bool(r["consent_date"]) == consented)
    ]
    if as_json:
        typer.echo(
            json.dumps(
                [{k: v for k, v in r.items() if k != "touches"} for r in rows], ensure_ascii=False, indent=2
            )
        )
        return
    grid = Table(title=f"人材プール {len(rows)}名")
    for header in ("ID", "氏名", "区分", "基準日", "同意", "配信停止", "最後の送信", "次の予定", "再応募"):
        grid.add_column(header)
    for r in rows:
        grid.add_row(
            *(
                escape(str(v))
                for v in (
                    r["external_id"],
                    r["name"],
                    STATUS_LABELS.get(r["status"], r["status"]),
                    r["anchor"] or "—",
                    _consent(r),
                    "、".join(r["opted_out"]) or "—",
                    (r["last_sent"] or "—")[:16],
                    (r["next_due"] or "—")[:16],
                    "あり" if r["reapplied"] else "—",
                )
            )
        )
    out.print(grid)


def show_pool(
    ctx: typer.Context,
    external_id: Annotated[str, typer.Argument(help="The person's external id (応募者ID).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """人材プールの1名 — consent, opened links, re-application and every pool mail with its status."""
    from followup.labels import STATUS_LABELS, TOUCH_STATUS_LABELS

    context: AppContext = ctx.obj
    rows = _rows(context, external_id)
    if not rows:
        raise UserInputError(Problem(Path(external_id), None, None, "no such person (or erased on request)"))
    row = rows[0]
    if as_json:
        typer.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    out.print(
        f"{row['external_id']} {row['name']} / {STATUS_LABELS.get(row['status'], row['status'])} / "
        f"基準日 {row['anchor'] or '—'} / 同意 {_consent(row)} / "
        f"配信停止 {'、'.join(row['opted_out']) or 'なし'} / "
        f"開いたリンク {'、'.join(row['opened']) or 'なし'}"
        + (
            f" / 再応募: {row['reapplied_as']}"
            if row["reapplied_as"]
            else (" / 再応募あり" if row["reapplied"] else "")
        ),
        markup=False,
        highlight=False,
    )
    grid = Table(title="人材プールの連絡")
    for header in ("予定日時", "内容", "テンプレート", "手段", "状態", "理由"):
        grid.add_column(header)
    for t in row["touches"]:
        grid.add_row(
            *(
                escape(str(v))
                for v in (
                    t["due_at"][:16],
                    STEP_LABELS.get(t["step"], t["step"]),
                    t["template"],
                    t["channel"],
                    TOUCH_STATUS_LABELS.get(t["status"], t["status"]),
                    t["cancel_reason"] or "",
                )
            )
        )
    out.print(grid)


def register(app: typer.Typer) -> None:
    pool_app.command("list")(list_pool)
    pool_app.command("show")(show_pool)
    app.add_typer(pool_app, name="pool")
