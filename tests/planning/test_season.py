"""A real season (issue 12): nothing mis-timed, lost or silently skipped — with the real 2026–2027
calendar (jpholiday): シルバーウィーク 2026-09-19..23, 年末年始 2026-12-29..2027-01-03 and its weekend."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jpholiday
import pytest

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.errors import ConfigError, ImportRowsError
from followup.flags.rules import HolderHistory, evaluate
from followup.holders.importer import no_cadence_rows, read_holders_file
from followup.planning.planner import ExistingTouch, HolderSnapshot, plan, season_schedule
from followup.planning.simulate import simulate_season
from tests.cli import REPO, run_followup

CONFIG = REPO / "config" / "followup.yaml"
SAMPLE = REPO / "config" / "holders.sample.csv"
POLICY = load_policy(CONFIG, check_templates=False).policy
CAL = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")
ALL = frozenset({"email", "line", "slack"})
EVENT_TEMPLATES = {"zadankai_invite", "naiteishiki_guide", "konshinkai_invite"}
ONE_TIME = {"welcome_president", "mentor_intro", "first_day_schedule"}


def tokyo(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def holder(
    offer: str, start: str = "2027-04-01", *, id: int = 1, track: str = "new_grad", status: str = "offered"
) -> HolderSnapshot:
    return HolderSnapshot(
        id=id,
        external_id=f"H-{id:03d}",
        track=track,
        department=None,
        status=status,
        offer_date=date.fromisoformat(offer),
        accepted_date=None,
        start_date=date.fromisoformat(start),
        reachable=ALL,
    )


def season(h: HolderSnapshot) -> list:  # type: ignore[type-arg]
    match = POLICY.cadence_for(h.track, h.department)
    assert match is not None
    return season_schedule(h, match[0], match[1], POLICY, CAL)


def test_the_real_calendar_is_the_one_these_tests_assume() -> None:
    assert all(jpholiday.is_holiday(date(2026, 9, d)) for d in (21, 22, 23))  # シルバーウィーク
    assert [d for d in range(19, 24) if CAL.is_business_day(date(2026, 9, d))] == []
    assert not any(CAL.is_business_day(date(2027, 1, d)) for d in (1, 2, 3))  # 年末年始 and a weekend
    assert CAL.is_business_day(date(2027, 1, 4))


# --- (a) events are planned from their own dates ----------------------------------------------------


def test_event_invitations_go_from_the_events_dates_not_from_a_rotation_slot() -> None:
    touches = [t for t in season(holder("2026-04-15")) if t.event and t.key.endswith(":invitation")]
    assert [(t.template, t.due_at.date().isoformat()) for t in touches] == [
        ("zadankai_invite", "2026-06-26"),  # deadline 7/10 - 2w
        ("naiteishiki_guide", "2026-08-28"),  # deadline 9/18 - 3w
        ("konshinkai_invite", "2026-10-30"),  # deadline 11/13 - 2w
    ]
    assert {t.key.split(":", 2)[2] for t in touches} == {
        "event:zadankai:invitation",
        "event:naiteishiki:invitation",
        "event:konshinkai:invitation",
    }


def test_a_later_offer_is_invited_on_its_offer_day_until_the_deadline_and_never_after() -> None:
    # offered 9/10, after the 内定式 invitation day (8/28) but before its deadline (9/18)
    late = {
        t.template: t.due_at.date()
        for t in season(holder("2026-09-10"))
        if t.event and t.key.endswith(":invitation")
    }
    assert late["naiteishiki_guide"] <= date(2026, 9, 18)
    assert late["naiteishiki_guide"] >= date(2026, 9, 10)
    assert "zadankai_invite" not in late  # its deadline (7/10) had passed
    # offered on the deadline itself, during a busy week: still that day at the latest
    on_deadline = {
        t.template: t.due_at.date()
        for t in season(holder("2026-09-18"))
        if t.event and t.key.endswith(":invitation")
    }
    assert on_deadline["naiteishiki_guide"] == date(2026, 9, 18)
    # offered in シルバーウィーク (9/21), after the deadline: no 内定式 invitation, the 懇親会 one yes
    after = {
        t.template: t.due_at.date()
        for t in season(holder("2026-09-21"))
        if t.event and t.key.endswith(":invitation")
    }
    assert "naiteishiki_guide" not in after and after["konshinkai_invite"] == date(2026, 10, 30)


def test_an_event_after_the_holders_start_or_outside_its_audience_plans_nothing() -> None:
    mid = holder("2026-10-05", "2027-01-05", track="mid_career")  # audience is new_grad only
    assert [t for t in season(mid) if t.event] == []


def test_a_tick_creates_the_event_touch_with_its_event_and_the_record_carries_it() -> None:
    result = plan([holder("2026-04-15")], POLICY, {}, tokyo("2026-08-27T09:00"), CAL)
    invitation = next(t for t in result.create if t.event == "naiteishiki")
    assert invitation.template == "naiteishiki_guide" and invitation.kind == "message"
    assert invitation.due_at == tokyo("2026-08-28T10:00")
    simulated = simulate_season([holder("2026-04-15")], POLICY, date(2026, 8, 1), date(2026, 9, 30))
    records = simulated.records()
    assert all("event" in r for r in records)
    assert {r["event"] for r in records} == {None, "naiteishiki"}


def test_check_config_summary_says_when_each_invitation_goes_and_to_whom() -> None:
    from followup.cli.config_cmd import summarize

    events = summarize(POLICY)["events"]
    assert isinstance(events, dict)
    naiteishiki = events["naiteishiki"]
    assert naiteishiki["audience"] == {"tracks": ("new_grad",)} or naiteishiki["audience"] == {
        "tracks": ["new_grad"]
    }
    assert naiteishiki["touches"]["invitation"] == {
        "template": "naiteishiki_guide",
        "at": "deadline - 3w",
        "date": "2026-08-28",
        "latest": "2026-09-18",
    }


# --- (b) rotations, the first-day message and one-time templates ------------------------------------


def test_a_survey_never_swallows_the_template_that_was_due() -> None:
    touches = season(holder("2026-04-15"))
    steady = [t for t in touches if t.phase == "steady"]
    # survey.every 2 without its own template: the link rides on the rotation's entry (k mod 2)
    assert [t.template for t in steady] == ["monthly_update", "checkin"] * 4 + ["monthly_update"]
    assert [t.kind for t in steady][:2] == ["message", "survey"]
    pre = [t.template for t in touches if t.phase == "pre_start" and t.seq >= 0]
    assert pre == ["prestart_checklist", "checkin", "monthly_update"] * 2 + ["prestart_checklist", "checkin"]


def test_the_first_day_schedule_reaches_everyone_once_even_a_late_offer() -> None:
    for h in (
        holder("2026-04-15"),
        holder("2027-03-01"),  # offered four weeks before the start
        holder("2026-12-21", "2027-01-05", track="mid_career"),  # start right after 年末年始
        holder("2027-03-29", "2027-04-01"),  # offered three days before the start
    ):
        first_day = [t for t in season(h) if t.template == "first_day_schedule"]
        assert len(first_day) == 1, h
        assert h.offer_date <= first_day[0].due_at.date() < h.start_date
        assert CAL.is_business_day(first_day[0].due_at.date())


def test_a_one_time_template_goes_once_for_a_mid_career_holder() -> None:
    # 11 weekly touches before start - 2w: the rotation wraps twice, the welcome is not repeated
    touches = season(holder("2026-11-02", "2027-02-01", track="mid_career"))
    counts = Counter(t.template for t in touches)
    assert counts["welcome_president"] == 1 and counts["mentor_intro"] == 1
    assert counts["checkin"] >= 2 and counts["monthly_update"] >= 2


def test_check_config_warns_when_a_rotation_repeats_a_one_time_template(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8").replace(
        "templates: [{template: welcome_president, once: true}, {template: mentor_intro, once: true}, "
        "checkin, monthly_update]\n        survey: {form: pulse, every: 3}",
        "templates: [welcome_president, mentor_intro, checkin, monthly_update]\n"
        "        survey: {form: pulse, every: 3}",
    )
    assert "templates: [welcome_president, mentor_intro" in text
    path = tmp_path / "followup.yaml"
    path.write_text(text.replace("templates_dir: ../templates", f"templates_dir: {REPO}/templates"))
    loaded = load_policy(path, check_templates=False)
    messages = [str(w) for w in loaded.warnings]
    assert any("welcome_president" in m and "once: true" in m for m in messages), messages
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "[welcome_president, mentor_intro" in t)
    assert any(f"{path}:{line}:" in m for m in messages)
    result = run_followup("--config", str(path), "check-config")
    assert result.returncode == 0 and "welcome_president" in result.stderr


# --- (c) a touch held over a long closure is not lost -----------------------------------------------


def test_a_touch_due_before_silver_week_is_still_created_after_it() -> None:
    # offered Friday 9/18: the first message is due that day; the scheduler was down until 9/24
    h = holder("2026-09-18")
    result = plan([h], POLICY, {}, tokyo("2026-09-24T07:00"), CAL)
    assert "H-001:new_grad:initial:0" in [t.key for t in result.create]


def test_a_touch_held_over_silver_week_is_neither_cancelled_nor_moved() -> None:
    h = holder("2026-09-18")
    due = tokyo("2026-09-18T10:00")
    waiting = ExistingTouch(1, "H-001:new_grad:initial:0", 1, "initial", 0, "message", "line", due, "planned")
    held = replace(waiting, due_at=tokyo("2026-09-24T09:00"))  # delivery held it to the next open moment
    for touch in (waiting, replace(held, deferred=True)):
        result = plan([h], POLICY, {1: [touch]}, tokyo("2026-09-24T07:00"), CAL)
        assert result.cancel == [] and result.move == [], touch
    # even a hold the planner did not hear about is not cancelled as 「送信時期を過ぎた」: 9/18 is within
    # the last three business days on 9/24 (9/19–9/23 do not count)
    result = plan([h], POLICY, {1: [held]}, tokyo("2026-09-24T07:00"), CAL)
    assert result.cancel == []


def test_a_touch_before_the_year_end_closure_is_caught_up_on_the_first_business_day() -> None:
    # offered Monday 12/28, the last business day of 2026: the closure and its weekend take six days
    result = plan([holder("2026-12-28")], POLICY, {}, tokyo("2027-01-04T07:00"), CAL)
    assert "H-001:new_grad:initial:0" in [t.key for t in result.create]


def test_delivery_holding_a_touch_back_marks_it_so_the_planner_leaves_it(tmp_path: Path) -> None:
    from sqlalchemy import select

    from followup.config.context import AppContext
    from followup.config.settings import Settings
    from followup.db.models import OfferHolder, Touch
    from followup.delivery.deliver import deliver_touch
    from followup.planning.store import load_snapshots

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/f.db", var_dir=tmp_path, config=CONFIG, broker_url=""
    )
    context = AppContext(settings=settings)
    with context.session() as session:
        person = OfferHolder(
            external_id="H-001",
            name="試験 太郎",
            email="taro@example.com",
            track="new_grad",
            offer_date=date(2026, 9, 18),
            start_date=date(2027, 4, 1),
            status="offered",
        )
        session.add(person)
        session.flush()
        session.add(
            Touch(
                key="H-001:new_grad:initial:0",
                holder_id=person.id,
                cadence="new_grad",
                phase="initial",
                seq=0,
                kind="message",
                channel="email",
                template="welcome_president",
                due_at=tokyo("2026-09-18T10:00"),
                status="planned",
            )
        )
    # the worker picks it up on Saturday 9/19 (in シルバーウィーク): held until 9/24 09:00
    outcome = deliver_touch(context, 1, now=tokyo("2026-09-19T10:00"))
    assert outcome.startswith("deferred")
    with context.session() as session:
        touch = session.scalars(select(Touch)).one()
        assert touch.held_at is not None and touch.status == "planned"
        _holders, existing = load_snapshots(session, context.policy, now=tokyo("2026-09-24T07:00"))
    assert existing[1][0].deferred


# --- (d) people who fit no cadence ---------------------------------------------------------------


def test_a_holder_without_a_cadence_is_named_with_the_tracks_that_exist() -> None:
    second = holder("2026-05-01", track="第二新卒")
    result = plan([second], POLICY, {}, tokyo("2026-05-01T07:00"), CAL)
    assert result.create == []
    [(holder_id, reason)] = result.skipped
    assert holder_id == 1 and "第二新卒" in reason and "new_grad" in reason and "mid_career" in reason


def test_the_no_cadence_rule_says_why_nobody_contacts_them() -> None:
    history = HolderHistory(
        holder_id=1,
        external_id="H-001",
        name="",
        status="offered",
        offer_date=date(2026, 5, 1),
        start_date=date(2027, 4, 1),
        cadence=None,
        track="第二新卒",
    )
    flags = {f.rule: f for f in evaluate(history, POLICY, tokyo("2026-06-01T08:30"))}
    assert "no_cadence" in flags
    assert "第二新卒" in flags["no_cadence"].reason and flags["no_cadence"].action
    with_cadence = replace(history, cadence="new_grad", track="new_grad")
    assert "no_cadence" not in {f.rule for f in evaluate(with_cadence, POLICY, tokyo("2026-06-01T08:30"))}


# --- (e) real ATS exports --------------------------------------------------------------------------

ATS_HEADER = [
    "応募者番号",
    "氏名",
    "フリガナ",
    "メールアドレス",
    "電話番号",
    "採用区分",
    "大学名",
    "学部・学科",
    "配属予定部署",
    "内定日",
    "入社予定日",
    "承諾期限",
    "ステータス",
    "応募経路",
    "備考",
]


def ats_export(path: Path) -> Path:
    rows = [
        ATS_HEADER,
        ["A-1", "山田 花子", "ヤマダ ハナコ", "hanako@example.ac.jp", "090-1111-2222", "新卒", "神戸大学",
         "経済学部", "営業部", "2026/4/15", "2027/4/1", "2026/5/15", "内定", "ナビサイト", ""],
        ["A-2", "佐藤 健太", "サトウ ケンタ", "", "", "新卒", "大阪大学", "工学部", "開発部", "2026/4/22",
         "2027/4/1", "", "承諾", "紹介", "電話のみ"],
        ["A-3", "鈴木 一郎", "スズキ イチロウ", "ichiro@example.com", "", "第二新卒", "", "", "開発部",
         "2026/5/1", "2026/10/1", "", "内定", "エージェント", ""],
    ]  # fmt: skip
    with path.open("w", encoding="cp932", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_a_15_column_cp932_ats_export_is_read_with_its_extra_columns_ignored(tmp_path: Path) -> None:
    path = ats_export(tmp_path / "ats.csv")
    read = read_holders_file(path, column_map={"応募者番号": "external_id"})
    assert read.ignored_columns == ("フリガナ", "大学名", "学部・学科", "応募経路", "備考")
    assert [r.external_id for r in read.rows] == ["A-1", "A-2", "A-3"]
    first = read.rows[0]
    assert first.phone == "090-1111-2222" and first.acceptance_deadline == date(2026, 5, 15)
    assert read.no_contact == (3,)  # 佐藤 健太 has no channel: imported, flagged later
    [(row, message)] = no_cadence_rows(read.rows, POLICY)
    assert row.line == 4 and "第二新卒" in message and "new_grad" in message
    with pytest.raises(ImportRowsError) as refused:
        read_holders_file(path, strict=True, column_map={"応募者番号": "external_id"})
    assert "フリガナ" in str(refused.value)


def test_import_maps_headers_warns_once_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "followup.yaml"
    config.write_text(
        CONFIG.read_text(encoding="utf-8").replace(
            "templates_dir: ../templates", f"templates_dir: {REPO}/templates"
        )
        + "\nimport:\n  columns:\n    応募者番号: external_id\n",
        encoding="utf-8",
    )
    env = {
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path),
        "FOLLOWUP_CONFIG": str(config),
    }
    path = ats_export(tmp_path / "ats.csv")
    dry = run_followup("import-holders", str(path), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would import" in dry.stdout and "created 3" in dry.stdout
    assert dry.stderr.count("ignored columns") == 1 and "フリガナ, 大学名" in dry.stderr
    assert f"{path}:3:" in dry.stderr and "unreachable" in dry.stderr  # no contact channel, named
    assert f"{path}:4:" in dry.stderr and "第二新卒" in dry.stderr  # no cadence, named with its row
    listed = run_followup("holders", "list", "--json", env=env)
    assert json.loads(listed.stdout) == []  # nothing written
    real = run_followup("import-holders", str(path), env=env)
    assert real.returncode == 0 and "created 3" in real.stdout, real.stderr
    flags = run_followup("flags", "--now", "2026-06-01T09:00+09:00", "--json", env=env)
    rules = {(f["external_id"], f["rule"]) for f in json.loads(flags.stdout)}
    assert ("A-2", "unreachable") in rules and ("A-3", "no_cadence") in rules
    planned = run_followup("plan", "--now", "2026-06-01T09:00+09:00", env=env)
    assert "A-3" in planned.stdout and "第二新卒" in planned.stdout
    # the next export says A-1 declined: a dry run names the change and the touches it would cancel
    rows = list(csv.reader(path.open(encoding="cp932", newline="")))
    rows[1][12] = "辞退"
    with (tmp_path / "next.csv").open("w", encoding="cp932", newline="") as f:
        csv.writer(f).writerows(rows)
    again = run_followup("import-holders", str(tmp_path / "next.csv"), "--dry-run", env=env)
    assert "A-1: updated: status offered → declined" in again.stdout
    assert "cancelled 0 pending touches" not in again.stdout and "cancelled" in again.stdout
    status = {
        h["external_id"]: h["status"]
        for h in json.loads(run_followup("holders", "list", "--json", env=env).stdout)
    }
    assert status["A-1"] == "offered"


# --- (f) YAML mistakes in HR words -----------------------------------------------------------------


def _broken(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    text = CONFIG.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    path = tmp_path / "followup.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if new.strip().splitlines()[0] in t)
    return path, line


def test_a_full_width_colon_is_reported_on_its_own_line_in_japanese(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, "        every: 1mo\n", "        every：1mo\n")
    with pytest.raises(ConfigError) as error:
        load_policy(path, check_templates=False)
    [problem] = error.value.problems
    assert problem.line == line
    assert problem.message.startswith("全角のコロン")
    assert "YAML:" in problem.message  # the parser's own words follow


def test_an_indentation_slip_says_so_in_japanese_on_the_right_line(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, "        max_gap: 45d\n", "       max_gap: 45d\n")
    with pytest.raises(ConfigError) as error:
        load_policy(path, check_templates=False)
    [problem] = error.value.problems
    assert problem.line == line
    assert problem.message.startswith("字下げ")
    assert problem.message.index("字下げ") < problem.message.index("expected <block end>")


# --- (g) --now and workers; dates from the real send moment ------------------------------------------


def test_a_message_sent_late_counts_days_from_when_it_is_sent() -> None:
    from followup.db.models import OfferHolder, Touch
    from followup.delivery.deliver import message_context
    from followup.delivery.links import LinkSigner

    person = OfferHolder(
        id=1, external_id="H-1", name="試験", track="new_grad", offer_date=date(2026, 5, 1),
        start_date=date(2027, 4, 1), status="offered",
    )  # fmt: skip
    touch = Touch(
        id=1, key="k", holder_id=1, cadence="new_grad", phase="steady", seq=0, kind="message",
        channel="email", template="monthly_update", due_at=tokyo("2026-05-27T10:00"),
    )  # fmt: skip
    signer = LinkSigner("s", "http://127.0.0.1:8000")
    late = message_context(person, touch, POLICY, signer, sent_at=tokyo("2026-12-01T10:00"))
    assert late["days_until_start"] == (date(2027, 4, 1) - date(2026, 12, 1)).days  # 121, not 309


def test_run_with_now_and_a_broker_is_refused_clearly(tmp_path: Path) -> None:
    env = {
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path),
        "FOLLOWUP_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = run_followup("run", "--once", "--now", "2026-05-15T10:00+09:00", env=env)
    assert result.returncode == 2
    assert "--now" in result.stderr and "FOLLOWUP_BROKER_URL" in result.stderr


# --- the whole example season, as HR previews it ----------------------------------------------------


def test_simulate_the_example_season_nothing_mistimed_lost_or_repeated(tmp_path: Path) -> None:
    out = tmp_path / "season.json"
    result = run_followup(
        "simulate", "--start", "2026-04-01", "--end", "2027-04-01", "--holders", str(SAMPLE),
        "--json", str(out), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text(encoding="utf-8"))
    assert all("event" in r for r in records)
    with SAMPLE.open(encoding="utf-8") as f:
        people = [r for r in csv.DictReader(f) if r["status"] in ("offered", "accepted")]
    by_holder: dict[str, list[dict[str, object]]] = defaultdict(list)
    for record in records:
        by_holder[str(record["external_id"])].append(record)

    for name, event in POLICY.events.items():
        deadline = event.latest("invitation")
        invited = {str(r["external_id"]): str(r["due_at"])[:10] for r in records if r["event"] == name}
        for person in people:
            audience = event.audience is None or event.audience.matches(person["track"], None)
            if audience and date.fromisoformat(person["offer_date"]) <= deadline:
                assert person["external_id"] in invited, (name, person["external_id"])
                assert invited[person["external_id"]] <= deadline.isoformat()
        assert all(day <= deadline.isoformat() for day in invited.values())

    for person in people:
        mine = by_holder[person["external_id"]]
        templates = Counter(str(r["template"]) for r in mine if r["template"])
        assert templates["first_day_schedule"] == 1, person["external_id"]
        assert all(templates[t] <= 1 for t in ONE_TIME), (person["external_id"], templates)
        cadence = POLICY.cadence_for(person["track"], person["department"])
        assert cadence is not None
        for phase in cadence[1].phases:
            sent = [str(r["template"]) for r in mine if r["phase"] == phase.name and r["kind"] != "manual"]
            survey_own = phase.survey.template if phase.survey else None
            one_offs = {o.template for o in phase.one_off}
            rotation = [t for t in sent if t != survey_own and t not in one_offs]
            entries = [ref.template for ref in phase.templates]
            repeat = [ref.template for ref in phase.templates if not ref.once]
            expected = (entries + repeat * len(rotation))[: len(rotation)]
            assert rotation == expected, (person["external_id"], phase.name)  # in order, none skipped


# --- (h) the demo from any directory, its headline = the database --------------------------------


def test_the_demo_runs_from_any_directory_and_its_headline_counts_match_the_database(
    tmp_path: Path,
) -> None:
    import os
    import re

    from sqlalchemy import create_engine, text

    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = run_followup("demo", "--dir", "demo", env=env, cwd=elsewhere, timeout=240)
    assert result.returncode == 0, result.stderr
    headline = next(line for line in result.stdout.splitlines() if line.startswith("送信・実施したフォロー"))
    from followup.labels import CHANNEL_LABELS

    channel_of = {CHANNEL_LABELS[name]: name for name in CHANNEL_LABELS}  # メール → email
    sends = headline.split(": ", 1)[1].split(" / ")[0]  # 「メール 275件、手紙 21件、…」
    shown = {channel_of[k]: int(v) for k, v in re.findall(r"([^、\s]+) (\d+)件", sends)}
    engine = create_engine(f"sqlite:///{elsewhere / 'demo' / 'followup.db'}")
    with engine.connect() as connection:
        counted = dict(
            connection.execute(
                text(
                    "SELECT channel, count(*) FROM touches WHERE status IN ('sent', 'done') GROUP BY channel"
                )
            ).all()
        )
    assert shown == counted and shown["letter"] > 0 and shown["phone"] > 0
