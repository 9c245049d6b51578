"""`flags` and `report` on PostgreSQL for N holders with a season of touches, beside a per-holder baseline.

    python benchmarks/flags_report.py [--holders 100000] [--baseline-holders 2000]

Seeds a fresh PostgreSQL 15 (tests/services.py) with the synthetic season of benchmarks/rules_eval.py
written as rows (holders, touches sent or failed, survey responses, replies) by COPY, then times, end
to end as a user runs them (child processes, interpreter start included):

* ``followup flags --now …`` (load the histories, evaluate, persist every flag, print the top N),
* ``followup report --now … --out …`` (evaluate and persist again, then build and write the HTML),
  and the size of that HTML and of the weekly email built from the same report.

Baseline, in the same run and on the same database: the straightforward per-holder loop (for each
active holder, SELECT its touches, responses and replies, build its history, evaluate it alone and
persist its flags as ORM objects), on the first M holders; scaled linearly to N (the loop is linear in
the holders: one round trip set per holder), plus the fixed cost of the command (``followup flags`` on
an empty database: interpreter start, imports, policy load), so both sides time what a user waits
for. The ratio is on the last line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from rules_eval import NOW, season  # noqa: E402

from followup.config import load_policy  # noqa: E402
from followup.flags.rules import HolderHistory  # noqa: E402

NULL = r"\N"  # COPY's NULL


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def seed(url: str, histories: list[HolderHistory]) -> dict[str, int]:
    """COPY the season into the (migrated) database; returns row counts."""
    import psycopg

    created = _ts(datetime(2026, 3, 1, tzinfo=UTC))
    holders, touches, responses, events = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
    touch_id = 0
    counts = {"holders": 0, "touches": 0, "responses": 0, "events": 0}
    for h in histories:
        counts["holders"] += 1
        email = f"h{h.holder_id}@example.jp" if "email" in h.reachable_channels else r"\N"
        line = f"U{h.holder_id:032x}" if "line" in h.reachable_channels else r"\N"
        holders.write(
            f"{h.holder_id}\t{h.external_id}\t{h.name}\t{email}\t{line}\tnew_grad\t{h.offer_date}\t"
            f"{h.start_date}\t{h.status}\t{created}\t{created}\n"
        )
        answers = iter(h.responses)
        timeline = sorted(
            [(t.at, t, "sent") for t in h.delivered] + [(t.at, t, "failed") for t in h.undelivered],
            key=lambda item: item[0],
        )
        for seq, (at, t, status) in enumerate(timeline):
            touch_id += 1
            counts["touches"] += 1
            touches.write(
                f"{touch_id}\t{h.external_id}:{seq}\t{h.holder_id}\tnew_grad\tphase\t{seq}\t{t.kind}\t{t.channel}\t"
                f"{_ts(at)}\t{status}\t1\t0\t{_ts(at) if status == 'sent' else NULL}\t{created}\n"
            )
            if t.kind == "survey" and status == "sent":
                response = next(answers, None)
                if response is not None:
                    counts["responses"] += 1
                    responses.write(
                        f"{touch_id}\t{h.holder_id}\tpulse\t{{}}\t{response.score}\t"
                        f"{'t' if response.declining else 'f'}\t{_ts(response.submitted_at)}\t"
                        f"{_ts(response.submitted_at)}\n"
                    )
        for at in h.engagement:
            counts["events"] += 1
            events.write(f"{h.holder_id}\t{_ts(at)}\treply\temail\t{{}}\n")
    copies = [
        (
            "offer_holders (id, external_id, name, email, line_user_id, track, offer_date, start_date,"
            " status, created_at, updated_at)",
            holders,
        ),
        (
            "touches (id, key, holder_id, cadence, phase, seq, kind, channel, due_at, status, attempts,"
            " suppressed_count, sent_at, created_at)",
            touches,
        ),
        (
            "survey_responses (touch_id, holder_id, form, answers, score, declining, submitted_at,"
            " updated_at)",
            responses,
        ),
        ("engagement_events (holder_id, at, kind, channel, payload)", events),
    ]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for target, data in copies:
            with conn.cursor().copy(f"COPY {target} FROM STDIN") as copy:
                copy.write(data.getvalue())
        conn.execute("SELECT setval('offer_holders_id_seq', (SELECT max(id) FROM offer_holders))")
        conn.execute("SELECT setval('touches_id_seq', (SELECT max(id) FROM touches))")
        conn.commit()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return counts


def baseline(context: object, limit: int) -> tuple[float, int, int]:
    """The straightforward loop over the first ``limit`` active holders; rolled back at the end."""
    from sqlalchemy import select

    from followup.db.models import EngagementEvent, Flag, OfferHolder, SurveyResponse, Touch
    from followup.flags.phase import holder_phase
    from followup.flags.rules import PulseResponse, TouchRecord, evaluate_many
    from followup.vocab import ACTIVE_STATUSES

    policy = context.policy  # type: ignore[attr-defined]
    today = NOW.date()
    started = time.perf_counter()
    flags = holders = 0
    from followup.db.session import session_factory

    session = session_factory(context.db_url)()  # type: ignore[attr-defined]
    try:
        for holder in session.scalars(
            select(OfferHolder)
            .where(OfferHolder.status.in_(ACTIVE_STATUSES))
            .order_by(OfferHolder.id)
            .limit(limit)
        ):
            holders += 1
            touches = session.scalars(
                select(Touch).where(Touch.holder_id == holder.id).order_by(Touch.due_at)
            ).all()
            answers = session.scalars(
                select(SurveyResponse)
                .where(SurveyResponse.holder_id == holder.id)
                .order_by(SurveyResponse.submitted_at)
            ).all()
            replies = session.scalars(
                select(EngagementEvent.at)
                .where(EngagementEvent.holder_id == holder.id)
                .order_by(EngagementEvent.at)
            ).all()
            cadence, phase = holder_phase(
                policy,
                track=holder.track,
                department=holder.department,
                offer_date=holder.offer_date,
                accepted_date=holder.accepted_date,
                start_date=holder.start_date,
                today=today,
            )
            reachable = tuple(c for c, a in (("email", holder.email), ("line", holder.line_user_id)) if a)
            history = HolderHistory(
                holder_id=holder.id,
                external_id=holder.external_id,
                name=holder.name,
                status=holder.status,
                offer_date=holder.offer_date,
                start_date=holder.start_date,
                cadence=cadence,
                phase=phase,
                reachable_channels=reachable,
                delivered=tuple(
                    TouchRecord(t.sent_at or t.due_at, t.channel, t.kind, "delivered")
                    for t in touches
                    if t.status == "sent" and (t.sent_at or t.due_at) <= NOW
                ),
                undelivered=tuple(
                    TouchRecord(t.due_at, t.channel, t.kind, "failed")
                    for t in touches
                    if t.status == "failed"
                ),
                responses=tuple(
                    PulseResponse(r.submitted_at, r.score, r.declining, ())
                    for r in answers
                    if r.submitted_at <= NOW
                ),
                engagement=tuple(at for at in replies if at <= NOW),
            )
            for decision in evaluate_many([history], policy, NOW):
                flags += 1
                session.add(
                    Flag(
                        holder_id=decision.holder_id,
                        rule=decision.rule,
                        severity=decision.severity,
                        reason=decision.reason,
                        action=decision.action,
                        since=decision.since,
                        first_seen=NOW,
                        last_seen=NOW,
                    )
                )
            session.flush()
    finally:
        session.rollback()
        session.close()
    return time.perf_counter() - started, holders, flags


def run_cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "followup", *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"followup {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--baseline-holders", type=int, default=2_000)
    args = parser.parse_args()

    from sqlalchemy import select

    from followup.db.models import OfferHolder
    from followup.db.session import dispose_engines, get_engine
    from followup.report import build_email, build_report, render_html, workspace_url
    from followup.vocab import ACTIVE_STATUSES
    from tests.conftest import make_context
    from tests.services import start_postgres

    tmp = Path(tempfile.mkdtemp(prefix="bench-flags-"))
    policy = load_policy(REPO / "config" / "followup.yaml").policy
    histories = season(args.holders, policy, seed=7)
    postgres = start_postgres(tmp / "pg")
    try:
        url = postgres.create_database("flags")
        get_engine(url)
        dispose_engines()
        started = time.perf_counter()
        counts = seed(url, histories)
        del histories
        print(f"seeded {counts} in {time.perf_counter() - started:.1f} s")
        env = {**os.environ, "FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_VAR_DIR": str(tmp / "var")}
        env.pop("SMTP_URL", None)
        moment = NOW.isoformat()

        flags_s, flags_out = run_cli(env, "flags", "--now", moment)
        summary = [line for line in flags_out.splitlines() if "new " in line or "ほか" in line]
        print(f"followup flags (end to end, first run: all new)    {flags_s:6.2f} s  {' | '.join(summary)}")
        again_s, _ = run_cli(env, "flags", "--now", moment)
        print(f"followup flags (end to end, again: continuing) {again_s:6.2f} s")
        out = tmp / "weekly.html"
        report_s, report_out = run_cli(env, "report", "--now", moment, "--out", str(out))
        print(f"followup report --out (end to end)              {report_s:6.2f} s  {report_out.strip()}")
        context = make_context(url, tmp / "var")
        with context.session() as session:
            started = time.perf_counter()
            weekly = build_report(
                session, context.policy, NOW, workspace_url=workspace_url("https://hr.example.jp")
            )
            build_s = time.perf_counter() - started
        html = render_html(weekly, templates_root=context.templates_root)
        mail = build_email(weekly, context.policy, templates_root=context.templates_root).as_bytes()
        print(
            f"  build_report alone {build_s:.2f} s; at risk {weekly.at_risk_total:,}"
            f" ({len(weekly.at_risk)} in full);"
            f" HTML {out.stat().st_size / 1024:.0f} KiB (in-process {len(html.encode()) / 1024:.0f} KiB);"
            f" email {len(mail) / 1024:.0f} KiB (limit 1,024 KiB)"
        )
        base_s, base_holders, base_flags = baseline(context, args.baseline_holders)
        with context.session() as session:
            active = len(
                session.scalars(select(OfferHolder.id).where(OfferHolder.status.in_(ACTIVE_STATUSES))).all()
            )
        # the same scope as `followup flags`: the loop runs in this process, so add what the command
        # pays whatever the size (interpreter start, imports, policy load, printing), measured as the
        # same command on an empty database of the same server
        empty = postgres.create_database("flags_empty")
        get_engine(empty)
        dispose_engines()
        fixed_s, _ = run_cli({**env, "FOLLOWUP_DATABASE_URL": empty}, "flags", "--now", moment)
        scaled = fixed_s + base_s * active / max(base_holders, 1)
        print(
            f"baseline per-holder loop: {base_holders:,} active holders, {base_flags:,} flags"
            f" in {base_s:.2f} s -> {scaled:.1f} s for all {active:,} active holders"
            f" (scaled linearly, plus {fixed_s:.2f} s of `followup flags` on an empty database)"
        )
        dispose_engines()
        print(
            json.dumps(
                {"flags_s": round(flags_s, 2), "report_s": round(report_s, 2), "email_kib": len(mail) // 1024}
            )
        )
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
        print(
            f"ratio (flags end to end, {counts['holders']:,} holders): per-holder loop {scaled:.1f} s"
            f" / followup flags {flags_s:.2f} s = {scaled / flags_s:.1f}x"
        )
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
