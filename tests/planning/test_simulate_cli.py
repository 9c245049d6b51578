"""The planning commands as a user types them: simulate, plan, touch log."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import select

from followup.config import load_policy
from followup.db.models import OfferHolder, Touch
from followup.db.session import session_scope
from followup.planning.simulate import simulate_season
from tests.cli import REPO, run_followup

SAMPLE = REPO / "config" / "holders.sample.csv"
RECORD_KEYS = {"external_id", "cadence", "phase", "kind", "channel", "template", "due_at", "status", "event"}


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db", "FOLLOWUP_VAR_DIR": str(tmp_path)}


def test_simulating_a_year_over_the_sample_holders_prints_the_summary(tmp_path: Path) -> None:
    out_file = tmp_path / "touches.json"
    result = run_followup(
        "simulate",
        "--start",
        "2026-04-01",
        "--end",
        "2027-03-31",
        "--holders",
        str(SAMPLE),
        "--json",
        str(out_file),
        env=env_for(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "内定者ごと・フェーズごとの接点数" in result.stdout
    assert "月ごとの接点数" in result.stdout
    assert "氏名" in result.stdout and "内定直後期" in result.stdout and "入社直前期" in result.stdout
    for english in ("initial", "pre_start", "manual", "touches per"):
        assert english not in result.stdout
    assert "NG-2027-001" in result.stdout
    assert "2026-07 " in result.stdout  # the calendar has a line per month
    assert "送信は行っていません" in result.stdout
    records = json.loads(out_file.read_text(encoding="utf-8"))
    assert records and all(set(r) == RECORD_KEYS for r in records)
    assert all(r["due_at"].endswith("+09:00") for r in records)
    assert {r["kind"] for r in records} == {"message", "survey", "manual"}
    first = [r for r in records if r["external_id"] == "NG-2027-001"]
    assert first[0]["due_at"] == "2026-04-15T10:00:00+09:00"  # this holder's offer date
    assert not (tmp_path / "f.db").exists() or _no_touches(f"sqlite:///{tmp_path}/f.db")


def _no_touches(url: str) -> bool:
    with session_scope(url) as session:
        return session.scalar(select(Touch.id).limit(1)) is None


def test_simulation_matches_the_planners_season_and_keeps_per_holder_lists() -> None:
    from followup.cli.planning_cmd import _snapshots_from_csv

    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
    holders = _snapshots_from_csv(SAMPLE)
    seen: list[str] = []
    result = simulate_season(
        holders, policy, date(2026, 4, 1), date(2026, 6, 30), progress=lambda d, t: seen.append(f"{d}/{t}")
    )
    assert seen[-1] == "91/91"
    holder = next(h for h in holders if h.external_id == "NG-2027-001")
    touches = result.by_holder[holder.id]
    assert [t.due_at.date().isoformat() for t in touches if t.phase == "initial" and t.kind != "manual"] == [
        "2026-04-15", "2026-04-22", "2026-04-30", "2026-05-07", "2026-05-13", "2026-05-20",
    ]  # fmt: skip
    declined = [h for h in holders if h.status == "declined"]
    assert declined and all(not result.by_holder.get(h.id) for h in declined)


def test_simulate_refuses_an_end_before_the_start(tmp_path: Path) -> None:
    result = run_followup("simulate", "--start", "2026-04-01", "--end", "2026-03-01", env=env_for(tmp_path))
    assert result.returncode == 2
    assert "--end" in result.stderr


def _add_holder(url: str) -> None:
    with session_scope(url) as session:
        session.add(
            OfferHolder(
                external_id="NG-1",
                name="山田 花子",
                email="hanako@example.ac.jp",
                track="new_grad",
                offer_date=date(2026, 4, 15),
                start_date=date(2027, 4, 1),
            )
        )


def test_plan_twice_with_the_same_now_creates_nothing_the_second_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    from followup.db.session import get_engine

    get_engine(url)
    _add_holder(url)
    first = run_followup("plan", "--now", "2026-04-15T08:00", env=env_for(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "created 2," in first.stdout  # the first e-mail (4/15) and the president's call (4/16)
    second = run_followup("plan", "--now", "2026-04-15T08:00", env=env_for(tmp_path))
    assert "created 0," in second.stdout
    bad = run_followup("plan", "--now", "yesterday", env=env_for(tmp_path))
    assert bad.returncode == 2


def test_touch_log_completes_the_due_call_or_records_an_ad_hoc_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    from followup.db.session import get_engine

    get_engine(url)
    _add_holder(url)
    run_followup("plan", "--now", "2026-04-15T08:00", env=env_for(tmp_path))
    done = run_followup(
        "touch",
        "log",
        "NG-1",
        "--channel",
        "phone",
        "--at",
        "2026-04-16T11:30",
        "--note",
        "とても喜んでいた",
        env=env_for(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    with session_scope(url) as session:
        call = session.scalars(select(Touch).where(Touch.channel == "phone")).one()
        assert call.status == "done" and call.key == "NG-1:new_grad:initial:once:president_call"
        assert "とても喜んでいた" in (call.note or "")
    adhoc = run_followup("touch", "log", "NG-1", "--channel", "meeting", env=env_for(tmp_path))
    assert adhoc.returncode == 0, adhoc.stderr
    with session_scope(url) as session:
        meeting = session.scalars(select(Touch).where(Touch.channel == "meeting")).one()
        assert meeting.status == "done" and meeting.cadence == "adhoc"
    unknown = run_followup("touch", "log", "NG-404", "--channel", "phone", env=env_for(tmp_path))
    assert unknown.returncode == 2
    assert "NG-404" in unknown.stderr


def test_the_simulation_shows_when_a_too_sparse_cadence_would_raise_neglect_flags(tmp_path: Path) -> None:
    text = (REPO / "config" / "followup.yaml").read_text(encoding="utf-8")
    sparse = text.replace(
        "        every: 1mo\n        max_gap: 45d", "        every: 2mo\n        max_gap: 45d", 1
    )
    assert sparse != text
    config = tmp_path / "sparse.yaml"
    config.write_text(sparse.replace("templates_dir: ../templates", f"templates_dir: {REPO / 'templates'}"))
    args = ("simulate", "--start", "2026-04-01", "--end", "2026-12-31", "--holders", str(SAMPLE))
    sparse_run = run_followup("--config", str(config), *args, env=env_for(tmp_path))
    assert sparse_run.returncode == 0, sparse_run.stderr
    assert "フラグが立つ時期" in sparse_run.stdout
    assert (
        "放置" in sparse_run.stdout
        and "neglected" not in sparse_run.stdout
        and "安定期の上限45日" in sparse_run.stdout
    )
    example_run = run_followup(*args, env=env_for(tmp_path))
    assert "フラグは立ちません" in example_run.stdout


def test_the_flag_timeline_notes_each_flag_once_when_it_first_fires() -> None:
    from followup.holders.importer import read_holders_csv
    from followup.planning.planner import HolderSnapshot
    from followup.planning.simulate import FlagTimeline

    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
    rows, _ = read_holders_csv(SAMPLE)
    row = rows[0]
    lost = HolderSnapshot(
        1,
        row.external_id,
        row.track,
        row.department,
        "accepted",
        row.offer_date,
        row.offer_date,
        row.start_date,
        frozenset(),
        None,
    )
    result = simulate_season(
        [lost], policy, date(2026, 4, 1), date(2026, 6, 30), observers=[FlagTimeline(policy)]
    )
    rules = [(n["external_id"], n["rule"]) for n in result.notes]
    assert rules.count((row.external_id, "unreachable")) == 1
    assert rules.count((row.external_id, "neglected")) == 1
