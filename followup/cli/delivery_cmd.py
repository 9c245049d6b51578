"""``followup run`` (plan what is due, then deliver it or hand it to workers) and ``followup worker``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from followup.errors import Problem, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext
    from followup.delivery.deliver import (
        DispatchSummary,
        Publish,
    )


log = logging.getLogger("followup.run")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _plan(context: AppContext, now: Any) -> int:
    """Planner first, so a touch due now is created and sent in the same run."""
    from followup.planning.store import plan_tick

    counts = plan_tick(context, now)
    # escalation mails for overdue manual touches are touches too (key escalation:<touch id>)
    return int(getattr(counts, "created", 0)) + int(getattr(counts, "escalated", 0))


def _summary_line(created: int, summary: DispatchSummary) -> str:
    from followup.delivery.deliver import outcome_counts

    if summary.enqueued:
        n = summary.dispatched
        return f"作成 {created}件 / 送信キュー投入 {n}件 (created {created}, enqueued {n})"
    totals = outcome_counts(summary.outcomes)
    sent = totals["sent"] + totals["reminded"]
    failed, suppressed, retry = totals["failed"], totals["suppressed"], totals["transient"]
    doubt = totals["in_doubt"]
    return (
        f"作成 {created}件 / 送信 {sent}件 / 失敗 {failed}件 / 抑制 {suppressed}件 / 再試行待ち {retry}件 "
        f"/ 送達不明 {doubt}件 "
        f"(created {created}, sent {sent}, failed {failed}, suppressed {suppressed}, retrying {retry}, "
        f"in doubt {doubt})"
    )


def _publisher(context: AppContext) -> Publish | None:
    """With a broker, the workers' publisher (imported only then: Celery is heavy to import)."""
    if not context.settings.broker_url:
        return None
    from workers.celery_app import publish_deliveries

    return publish_deliveries


def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Plan and deliver what is due, then exit.")] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Act as if it were this moment (ISO 8601; embedded delivery only: refused with a broker).",
        ),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between ticks.")] = 60.0,
) -> None:
    """The main job: plan touches and deliver those that are due (embedded), or enqueue them for workers
    when FOLLOWUP_BROKER_URL is set. 定期実行: 計画 → 送信。"""
    from followup.cli.timeparse import parse_now
    from followup.delivery.deliver import EnqueueMemo, FailureTally, outcome_counts, run_due
    from followup.ops.audit import record_policy

    context: AppContext = ctx.obj
    if interval <= 0:
        raise UserInputError(Problem(Path("--interval"), None, None, "must be greater than zero"))
    if now is not None and context.settings.broker_url:
        # workers claim and send by the real clock: a logical --now would plan for May and have the
        # workers send in December (and say 「あと309日」), so the combination is refused, not half-done
        raise UserInputError(
            Problem(
                Path("--now"),
                None,
                None,
                "FOLLOWUP_BROKER_URL が設定されているときは --now を使えません。"
                "ワーカーは実際の時刻で送信するため、--now の時刻どおりには送られません。"
                "--now を外すか、FOLLOWUP_BROKER_URL を外して組み込みモード(同じプロセスで送信)で"
                "実行してください。 (--now cannot be used with a broker: workers send by the real "
                "clock; drop --now, or unset FOLLOWUP_BROKER_URL to deliver in-process)",
            )
        )
    memo = EnqueueMemo(context.settings.claim_timeout)
    publish = _publisher(context)
    stop = StopFlag.install()
    policy_recorded = False
    failures: Counter[str] = Counter()  # consecutive failed passes, by kind
    while not stop.requested:
        moment = parse_now(now, context)
        try:
            if not policy_recorded:
                with context.session() as session:
                    record_policy(session, context.loaded, now=moment)
                policy_recorded = True
            created = _plan(context, moment)
            summary = run_due(context, moment, memo=memo, publish=publish, should_stop=stop.is_set)
        except Exception as exc:
            if once:
                raise
            # the database or the broker is away: one line per kind with its count, and back off
            kind = FailureTally.kind(exc)
            failures[kind] += 1
            wait = min(interval * 2 ** (sum(failures.values()) - 1), max(interval, MAX_BACKOFF))
            log.debug("run pass failed", exc_info=exc)
            err.print(
                f"エラー: {kind} ×{failures[kind]} (consecutive) — retrying in {wait:g} s",
                markup=False,
                highlight=False,
            )
            stop.sleep(wait)
            continue
        if failures:
            err.print(f"回復: {sum(failures.values())} failed pass(es) before this one", markup=False)
            failures.clear()
        out.print(_summary_line(created, summary), markup=False, highlight=False)
        if summary.recovered:
            err.print(f"復旧: 作業者が失われた送信 {summary.recovered}件を再計画しました (recovered claims)")
        in_doubt = outcome_counts(summary.outcomes)["in_doubt"]
        if in_doubt:
            err.print(
                f"要確認: 送達不明 {in_doubt}件 (in doubt, not resent: see `followup holders show`, "
                'metric followup_touches{status="in_doubt"})',
                markup=False,
            )
        if once:
            return
        stop.sleep(interval)
    err.print("SIGTERM: 処理中の送信を終えて終了しました (stopped after the current touch)", markup=False)


MAX_BACKOFF = 300.0  # seconds between passes while the database or broker stays away


class StopFlag:
    """SIGTERM (docker stop, systemd) asks ``run`` to stop: the touch being sent is finished and recorded,
    the rest of the batch stays planned, and the process exits 0. A second SIGTERM is handled the same."""

    def __init__(self) -> None:
        self.requested = False

    @classmethod
    def install(cls) -> StopFlag:
        flag = cls()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, flag._on_signal)
        return flag

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def is_set(self) -> bool:
        return self.requested

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option("--concurrency", "-n", min=1, help="Worker processes.")] = 2,
    pool: Annotated[str, typer.Option("--pool", help="Celery pool: prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
) -> None:
    """Start a Celery worker that delivers touches from the broker (FOLLOWUP_BROKER_URL)."""
    context: AppContext = ctx.obj
    broker_url = context.settings.broker_url
    if not broker_url:
        raise UserInputError(
            Problem(
                Path("FOLLOWUP_BROKER_URL"),
                None,
                None,
                "is not set: the worker needs a broker (e.g. redis://127.0.0.1:6379/0). "
                "Without one, `followup run` delivers in-process.",
            )
        )
    if pool not in ("prefork", "threads", "solo"):
        raise UserInputError(Problem(Path("--pool"), None, None, "expected prefork, threads or solo"))
    context.loaded  # noqa: B018 (fail here, with FILE:LINE:COL, before any worker process starts)
    # the worker processes build their own context from the environment: give them this --config
    os.environ["FOLLOWUP_CONFIG"] = str(context.config_file.resolve())
    import workers.tasks  # noqa: F401 (registers the tasks on the app the worker runs)
    from workers.celery_app import app

    app.conf.broker_url = broker_url
    app.worker_main(["worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}"])


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("worker")(worker)
