"""The HR workspace: the holders list (filters, search, counts, keyset paging, the paged API)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from followup.db.models import EventRsvp, Flag, OfferHolder, Touch
from followup.web.listing import HolderQuery, decode_cursor, list_holders
from tests import web_fixtures
from tests.conftest import make_context
from tests.web_fixtures import DASHBOARD_TOKEN, WebEnv

BEARER = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
T0 = datetime(2026, 6, 22, 1, 0, tzinfo=UTC)

web = web_fixtures.web


REASONS = {
    "declining_signal": "パルスサーベイで「他社も検討している」と回答しました。",
    "neglected": "最後の連絡から5週間、連絡がありません(内定直後期の上限は2週間)。",
    "low_pulse": "パルススコアが2.0まで下がっています。",
}


def _flag(session: Any, holder_id: int, rule: str, severity: str, resolved: bool = False) -> None:
    session.add(
        Flag(
            holder_id=holder_id,
            rule=rule,
            severity=severity,
            reason=REASONS[rule],
            action="電話してください。",
            first_seen=T0,
            last_seen=T0,
            resolved_at=T0 if resolved else None,
        )
    )


def seed(session: Any) -> dict[str, int]:
    """Six holders: risk 8, 5, 5, 3, 0 (a resolved high flag), 0; two departments, both tracks."""
    people = [
        ("NG-001", "山田 花子", "ヤマダ ハナコ", "new_grad", "営業部", "tanaka.k@example.co.jp"),
        ("NG-002", "佐藤 健太", "サトウ ケンタ", "new_grad", "開発部", "kobayashi.m@example.co.jp"),
        ("NG-003", "鈴木 一郎", "スズキ イチロウ", "new_grad", "営業部", "tanaka.k@example.co.jp"),
        ("MC-001", "高橋 美咲", "タカハシ ミサキ", "mid_career", "営業部", None),
        ("NG-004", "田中 次郎", "タナカ ジロウ", "new_grad", "営業部", "tanaka.k@example.co.jp"),
        ("NG-005", "伊藤 三郎", None, "new_grad", "開発部", None),
    ]
    ids: dict[str, int] = {}
    for i, (ext, name, kana, track, dept, mentor) in enumerate(people):
        holder = OfferHolder(
            external_id=ext,
            name=name,
            name_kana=kana,
            email=f"{ext.lower()}@example.ac.jp",
            track=track,
            department=dept,
            offer_date=date(2026, 6, 1),
            start_date=date(2027, 4, 1) + timedelta(days=i),
            status="accepted" if i % 2 else "offered",
            mentor_email=mentor,
        )
        session.add(holder)
        session.flush()
        ids[ext] = holder.id
    _flag(session, ids["NG-001"], "declining_signal", "high")
    _flag(session, ids["NG-001"], "neglected", "medium")
    _flag(session, ids["NG-002"], "low_pulse", "high")
    _flag(session, ids["NG-003"], "declining_signal", "high")
    _flag(session, ids["MC-001"], "neglected", "medium")
    _flag(session, ids["NG-004"], "declining_signal", "high", resolved=True)
    session.add(
        Touch(
            key=f"{ids['NG-001']}:new_grad:initial:1",
            holder_id=ids["NG-001"],
            cadence="new_grad",
            phase="initial",
            seq=1,
            kind="message",
            channel="email",
            template="checkin",
            due_at=T0 - timedelta(days=1),
            sent_at=T0 - timedelta(days=1),
            status="sent",
        )
    )
    session.add(EventRsvp(holder_id=ids["NG-002"], event="naiteishiki", status="attending", responded_at=T0))
    return ids


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["external_id"] for r in rows]


@pytest.fixture
def db_session(any_db_url: str, tmp_path: Path) -> Any:
    context = make_context(any_db_url, tmp_path / "var")
    with context.session() as session:
        seed(session)
    with context.session() as session:
        yield session


def test_the_list_is_riskiest_first_then_by_id_on_sqlite_and_postgres(db_session: Any) -> None:
    page = list_holders(db_session, HolderQuery(), T0)
    assert _ids(page.rows) == ["NG-001", "NG-002", "NG-003", "MC-001", "NG-004", "NG-005"]
    assert [r["risk"] for r in page.rows] == [8, 5, 5, 3, 0, 0]
    assert page.total == 6 and page.next_cursor is None
    assert page.rows[0]["phase"] == "initial"


def test_filters_narrow_the_list_and_the_counts_show_each_value(db_session: Any) -> None:
    query = HolderQuery(track="new_grad", department="営業部", severity="high")
    page = list_holders(db_session, query, T0)
    assert _ids(page.rows) == ["NG-001", "NG-003"]  # NG-004's high flag is resolved
    assert page.total == 2
    assert page.counts["department"] == {"営業部": 2, "開発部": 1}  # the department filter left out
    assert page.counts["track"] == {"new_grad": 2}  # 高橋 (mid_career) has no high flag
    assert page.counts["severity"] == {"high": 2, "medium": 1}
    assert _ids(list_holders(db_session, HolderQuery(flag="neglected"), T0).rows) == ["NG-001", "MC-001"]
    assert _ids(list_holders(db_session, HolderQuery(phase="initial"), T0).rows) == ["NG-001"]
    mentor = HolderQuery(mentor="tanaka.k@example.co.jp")
    assert _ids(list_holders(db_session, mentor, T0).rows) == ["NG-001", "NG-003", "NG-004"]
    attending = HolderQuery(event="naiteishiki", rsvp="attending")
    assert _ids(list_holders(db_session, attending, T0).rows) == ["NG-002"]
    pending = HolderQuery(event="naiteishiki", rsvp="pending", track="new_grad")
    assert _ids(list_holders(db_session, pending, T0).rows) == ["NG-001", "NG-003", "NG-004", "NG-005"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("山田花子", ["NG-001"]), ("ヤマダ", ["NG-001"]), ("ng-00", None), ("NG-00", None), ("100%", [])],
)
def test_search_finds_by_name_kana_or_id(db_session: Any, text: str, expected: list[str] | None) -> None:
    rows = list_holders(db_session, HolderQuery(q=text), T0).rows
    if expected is None:
        assert len(rows) == 5  # every NG- id, MC-001 not
    else:
        assert _ids(rows) == expected


def test_keyset_pages_cover_the_list_once_in_order(db_session: Any) -> None:
    for sort in ("risk", "name", "start_date", "external_id"):
        whole = _ids(list_holders(db_session, HolderQuery(sort=sort), T0).rows)
        seen: list[str] = []
        cursor = None
        while True:
            page = list_holders(db_session, HolderQuery(sort=sort), T0, limit=2, cursor=cursor)
            assert len(page.rows) <= 2
            seen += _ids(page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == whole, sort
    assert decode_cursor("not-a-cursor!") is None


def test_the_api_returns_at_most_limit_items_and_a_next_cursor(web: WebEnv) -> None:
    with web.context.session() as session:
        seed(session)
    first = web.client.get("/api/holders?limit=4", headers=BEARER).json()
    assert _ids(first["holders"]) == ["NG-001", "NG-002", "NG-003", "MC-001"]
    assert first["total"] == 6 and first["next_cursor"]
    second = web.client.get(f"/api/holders?limit=4&cursor={first['next_cursor']}", headers=BEARER).json()
    assert _ids(second["holders"]) == ["NG-004", "NG-005"] and second["next_cursor"] is None
    assert web.client.get("/api/holders?limit=501", headers=BEARER).status_code == 422
    assert web.client.get("/api/holders?limit=0", headers=BEARER).status_code == 422
    filtered = web.client.get("/api/holders?department=開発部", headers=BEARER).json()
    assert _ids(filtered["holders"]) == ["NG-002", "NG-005"]
    spec = web.client.get("/openapi.json").json()
    limit = next(p for p in spec["paths"]["/api/holders"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500


def test_the_list_page_filters_in_japanese_with_counts(web: WebEnv) -> None:
    with web.context.session() as session:
        seed(session)
    html = web.client.get(
        "/dashboard/holders?track=new_grad&department=営業部&severity=high", headers=BEARER
    ).text
    assert 'data-external-id="NG-001"' in html and 'data-external-id="NG-003"' in html
    assert 'data-external-id="NG-002"' not in html and 'data-external-id="MC-001"' not in html
    assert "2名が該当" in html
    assert "開発部 (1)" in html and "新卒 (2)" in html
    assert ">辞退の兆候</span>" in html and ">declining_signal<" not in html
    assert "4/1(木)" in html  # 入社 2027-04-01
    searched = web.client.get("/dashboard/holders?q=ヤマダ", headers=BEARER).text  # no counts while searching
    assert 'data-external-id="NG-001"' in searched and "1名が該当" in searched and "開発部 (" not in searched
    paged = web.client.get("/dashboard/holders?sort=external_id", headers=BEARER).text
    assert "次の" not in paged  # six holders fit on one page


@pytest.fixture
def clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app with its clock at T0 (Monday 2026-06-22 10:00 in Tokyo), seeded."""
    from fastapi.testclient import TestClient

    from followup.db.session import dispose_engines
    from followup.delivery.links import LinkSigner
    from followup.web import create_app
    from tests.web_fixtures import make_web_context

    context = make_web_context(tmp_path)
    with context.session() as session:
        ids = seed(session)
        session.add(
            Touch(
                key=f"{ids['NG-003']}:new_grad:initial:president_call",
                holder_id=ids["NG-003"],
                cadence="new_grad",
                phase="initial",
                seq=90,
                kind="manual",
                channel="phone",
                due_at=T0 - timedelta(days=3),
                status="reminded",
                assignee="tanaka.k@example.co.jp",
                note="社長からの電話",
            )
        )
        from followup.db.models import ChannelOptOut

        session.add(ChannelOptOut(holder_id=ids["NG-005"], channel="email", at=T0))
        session.add(ChannelOptOut(holder_id=ids["NG-004"], channel="line", at=T0))  # email still reaches
    with TestClient(create_app(context, clock=lambda: T0), follow_redirects=False) as client:
        yield WebEnv(context, LinkSigner.from_settings(context.settings), client, tmp_path), ids
    dispose_engines()


def test_the_home_page_lists_this_weeks_work_with_a_link_to_each_action(clocked: Any) -> None:
    env, _ids_by = clocked
    html = env.client.get("/dashboard", headers=BEARER).text
    assert "今週やること" in html and "6/22(月) 時点" in html
    flags = html.split('id="home-flags"')[1].split("</section>")[0]
    assert "未解決のフラグ(5件)" in flags  # NG-004's resolved flag is not there
    order = [flags.index(f'data-external-id="{ext}"') for ext in ("NG-001", "NG-002", "NG-003", "MC-001")]
    assert order[:3] == sorted(order[:3]) and order[3] > order[0]  # high flags before medium ones
    assert "電話してください。" in flags and REASONS["declining_signal"] in flags
    assert "/dashboard/holders/NG-001#flag-" in flags
    manual = html.split('id="home-manual"')[1].split("</section>")[0]
    assert "(1件)" in manual and "鈴木 一郎" in manual and "電話" in manual and "田中 健太" in manual
    assert "/dashboard/holders/NG-003#log-touch" in manual
    events = html.split('id="home-events"')[1].split("</section>")[0]
    # zadankai (7/15): every new graduate (5) is pending; naiteishiki: NG-002 said 出席
    assert "先輩社員とのオンライン座談会" in events and "5名 / 5名" in events and "4名 / 5名" in events
    assert "/dashboard/holders?event=naiteishiki&amp;rsvp=pending" in events
    opted = html.split('id="home-opted-out"')[1].split("</section>")[0]
    assert "(1名)" in opted and 'data-external-id="NG-005"' in opted and "NG-004" not in opted
    pending = env.client.get(
        "/dashboard/holders?event=naiteishiki&rsvp=pending&track=new_grad", headers=BEARER
    )
    assert 'data-external-id="NG-002"' not in pending.text and "4名が該当" in pending.text


# --- the holder page's actions ------------------------------------------------------------------------


def _signed_in(env: WebEnv) -> None:
    assert env.client.get(f"/dashboard?token={DASHBOARD_TOKEN}").status_code == 303  # sets the cookie


def _csrf_of(env: WebEnv, external_id: str) -> str:
    import re

    html = env.client.get(f"/dashboard/holders/{external_id}").text
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def _audit(env: WebEnv) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from followup.db.models import AuditEntry

    with env.context.session() as session:
        return [(a.actor, a.action) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_hr_logs_a_call_and_resolves_a_flag_and_both_are_on_the_timeline(clocked: Any) -> None:
    from sqlalchemy import select

    from followup.db.models import FlagAction

    env, ids = clocked
    _signed_in(env)
    csrf = _csrf_of(env, "NG-001")
    logged = env.client.post(
        "/dashboard/holders/NG-001/touch",
        data={"csrf": csrf, "channel": "phone", "note": "配属の不安を伺った"},
    )
    assert logged.status_code == 303
    assert logged.headers["location"] == "/dashboard/holders/NG-001?done=touch#timeline"
    with env.context.session() as session:
        flag = session.scalars(
            select(Flag).where(Flag.holder_id == ids["NG-001"], Flag.rule == "neglected")
        ).one()
        flag_id = flag.id
    resolved = env.client.post(
        "/dashboard/holders/NG-001/flag",
        data={"csrf": csrf, "flag_id": str(flag_id), "action": "resolve", "note": "電話で連絡済み"},
    )
    assert resolved.status_code == 303
    page = env.client.get(resolved.headers["location"]).text
    assert "フラグの対応を記録しました。" in page
    timeline = page.split('id="timeline"')[1]
    assert "電話:配属の不安を伺った" in timeline
    assert "放置を解決 — 電話で連絡済み" in timeline
    with env.context.session() as session:
        flag = session.get(Flag, flag_id)
        assert flag is not None and flag.resolved_at == T0
        [action] = session.scalars(select(FlagAction)).all()
        assert (action.action, action.actor, action.note) == ("resolve", "web:hr", "電話で連絡済み")
    assert [a for a in _audit(env) if a[0] == "web:hr"] == [
        ("web:hr", "touch_log"),
        ("web:hr", "flag_resolve"),
    ]


def test_a_post_without_the_sessions_csrf_token_is_refused_and_writes_nothing(clocked: Any) -> None:
    from followup.db.models import AuditEntry

    env, _ = clocked
    _signed_in(env)
    before = env.count(Touch)
    for data in ({}, {"csrf": "0" * 40}, {"csrf": ""}):
        response = env.client.post("/dashboard/holders/NG-001/touch", data={**data, "channel": "phone"})
        assert response.status_code == 403
    # a bearer caller has no session, so no token: the forms are not for it
    env.client.cookies.clear()
    csrf_of_nobody = "0" * 40
    bearer = env.client.post(
        "/dashboard/holders/NG-001/touch", data={"csrf": csrf_of_nobody, "channel": "phone"}, headers=BEARER
    )
    assert bearer.status_code == 403
    assert env.client.post("/dashboard/holders/NG-001/touch", data={"channel": "phone"}).status_code == 401
    assert env.count(Touch) == before and env.count(AuditEntry) == 0


def test_status_start_date_attendance_and_pause_go_through_the_lifecycle(clocked: Any) -> None:
    from sqlalchemy import select

    from followup.db.models import HolderChange

    env, ids = clocked
    _signed_in(env)
    csrf = _csrf_of(env, "NG-001")

    def post(what: str, **data: str) -> Any:
        return env.client.post(f"/dashboard/holders/NG-001/{what}", data={"csrf": csrf, **data})

    assert post("status", status="accepted").status_code == 303
    joined = post("status", status="joined")  # accepted → joined is allowed
    assert joined.headers["location"].endswith("done=status#timeline")
    refused = post("status", status="offered")
    assert "error=status" in refused.headers["location"]
    assert "error=start_date" in post("start_date", start_date="2026-01-01").headers["location"]
    assert "done=start_date" in post("start_date", start_date="2027-04-05").headers["location"]
    assert (
        "done=attendance"
        in post("attendance", event="naiteishiki", attendance="attended").headers["location"]
    )
    assert "done=pause" in post("pause", until="2026-07-31").headers["location"]
    with env.context.session() as session:
        holder = session.get(OfferHolder, ids["NG-001"])
        assert holder is not None
        assert (holder.status, holder.start_date, holder.paused_until) == (
            "joined",
            date(2027, 4, 5),
            date(2026, 7, 31),
        )
        changes = [(c.field, c.new_value, c.source) for c in session.scalars(select(HolderChange))]
        assert ("status", "accepted", "web") in changes and ("paused_until", "2026-07-31", "web") in changes
        [rsvp] = session.scalars(select(EventRsvp).where(EventRsvp.holder_id == ids["NG-001"])).all()
        assert rsvp.attendance == "attended"
    page = env.client.get("/dashboard/holders/NG-001").text
    assert "7/31(金) まで一時停止" in page and "内定式: 当日出席" in page
    actions = [a for _, a in _audit(env)]
    assert actions == ["holder_status", "holder_status", "holder_start_date", "attendance", "holder_pause"]


def test_hr_marks_a_task_received_on_the_holder_page_and_the_sheet_shows_it(clocked: Any) -> None:
    from sqlalchemy import select

    from followup.db.models import TaskStatus

    env, ids = clocked
    _signed_in(env)
    csrf = _csrf_of(env, "NG-001")
    page = env.client.get("/dashboard/holders/NG-001").text
    assert 'id="holder-tasks"' in page and "身元保証書" in page and "未提出" in page

    done = env.client.post(
        "/dashboard/holders/NG-001/task",
        data={"csrf": csrf, "task": "guarantee", "status": "submitted", "note": "郵送で受領"},
    )
    assert done.status_code == 303 and done.headers["location"].endswith("done=task#timeline")
    unknown = env.client.post(
        "/dashboard/holders/NG-001/task", data={"csrf": csrf, "task": "no_such_task", "status": "submitted"}
    )
    assert "error=input" in unknown.headers["location"]
    with env.context.session() as session:
        [mark] = session.scalars(select(TaskStatus).where(TaskStatus.holder_id == ids["NG-001"])).all()
        assert (mark.task, mark.status, mark.source, mark.note) == (
            "guarantee",
            "submitted",
            "web",
            "郵送で受領",
        )
    assert [a for _, a in _audit(env)] == ["task_status"]

    sheet = env.client.get("/dashboard/tasks/guarantee").text
    assert "身元保証書 提出状況" in sheet
    row = sheet.split('data-external-id="NG-001"')[1].split("</tr>")[0]
    assert "提出済" in row and "郵送で受領" in row
    csv = env.client.get("/dashboard/tasks/guarantee/sheet.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("cp932").splitlines()
    assert lines[0].startswith("内定者ID,氏名,部署,期限,状況") and any(
        line.startswith("NG-001,山田 花子") and "提出済" in line for line in lines
    )
    assert env.client.get("/dashboard/tasks/no_such_task").status_code == 404
    assert 'href="/dashboard/tasks/guarantee"' in env.client.get("/dashboard").text  # linked from the home


def test_hr_previews_an_announcement_then_confirms_it_once(clocked: Any) -> None:
    import re

    from sqlalchemy import select

    env, _ = clocked
    _signed_in(env)
    form = env.client.get("/dashboard/announce").text
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    assert match and "年末年始のご挨拶" in form
    chosen = {
        "csrf": match.group(1),
        "template": "year_end_greeting",
        "track": "new_grad",
        "department": "営業部",
    }

    def keys() -> list[str]:
        with env.context.session() as session:
            return sorted(session.scalars(select(Touch.key).where(Touch.key.like("announce:%"))))

    shown = env.client.post("/dashboard/announce/preview", data=chosen)
    assert shown.status_code == 200 and keys() == []  # a preview writes nothing
    summary = shown.text.split('id="preview-summary"')[1].split("</p>")[0]
    assert "送信予定 <strong>3名</strong>" in summary and "メール 3名" in summary
    assert all(f'data-external-id="{e}"' in shown.text for e in ("NG-001", "NG-003", "NG-004"))

    sent = env.client.post("/dashboard/announce/send", data=chosen)
    assert sent.status_code == 303 and sent.headers["location"].endswith("done=3")
    expected = [f"announce:year_end_greeting:{e}" for e in ("NG-001", "NG-003", "NG-004")]
    assert keys() == expected
    again = env.client.post("/dashboard/announce/send", data=chosen)
    assert again.headers["location"].endswith("done=0") and keys() == expected  # once per person
    assert "3件を予約しました" in env.client.get(sent.headers["location"]).text
    assert [a for _, a in _audit(env)] == ["announce", "announce"]

    nobody = env.client.post("/dashboard/announce/preview", data={**chosen, "track": "", "department": ""})
    assert nobody.status_code == 400 and "送る相手を選んでください" in nobody.text
    missing = env.client.post("/dashboard/announce/preview", data={**chosen, "template": "no_such"})
    assert missing.status_code == 400 and "no_such" in missing.text
    forged = env.client.post("/dashboard/announce/send", data={**chosen, "csrf": "0" * 64})
    assert forged.status_code == 403 and keys() == expected


# --- mentors -------------------------------------------------------------------------------------------


def test_a_mentor_link_shows_only_their_mentees_and_lets_them_log_a_touch(clocked: Any) -> None:
    env, _ = clocked
    link = env.signer.mentor_token("tanaka.k@example.co.jp")
    signed = env.client.get(f"/m/{link}")
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
    assert "followup_mentor" in signed.headers["set-cookie"]
    home = env.client.get("/dashboard").text
    assert "田中 健太 さん(メンター)" in home and "鈴木 一郎" in home  # their mentee's overdue call
    assert "佐藤 健太" not in home and "高橋 美咲" not in home
    assert "home-events" not in home
    listed = env.client.get("/dashboard/holders").text
    for ext in ("NG-001", "NG-003", "NG-004"):
        assert f'data-external-id="{ext}"' in listed
    assert 'data-external-id="NG-002"' not in listed and "3名が該当" in listed
    assert env.client.get("/dashboard/holders/NG-002").status_code == 404  # not theirs: as if absent
    assert env.client.get("/dashboard/holders/NG-002?department=x").status_code == 404
    assert env.client.get("/api/holders").status_code == 401  # the API is HR's
    assert env.client.get("/dashboard/season").status_code == 401
    csrf = _csrf_of(env, "NG-003")
    page = env.client.get("/dashboard/holders/NG-003").text
    assert "flag-form" not in page and "status-form" not in page and "touch-form" in page
    done = env.client.post(
        "/dashboard/holders/NG-003/touch", data={"csrf": csrf, "channel": "phone", "note": "済"}
    )
    assert done.status_code == 303
    with env.context.session() as session:
        touch = session.scalars(select_touch().where(Touch.channel == "phone", Touch.kind == "manual")).one()
        assert touch.status == "done" and touch.sent_at == T0  # their reminded call, completed
    flag = env.client.post(
        "/dashboard/holders/NG-003/flag", data={"csrf": csrf, "flag_id": "1", "action": "resolve"}
    )
    assert flag.status_code == 403
    other = env.client.post("/dashboard/holders/NG-002/touch", data={"csrf": csrf, "channel": "phone"})
    assert other.status_code == 404
    assert ("web:mentor:tanaka.k@example.co.jp", "touch_log") in _audit(env)


def select_touch() -> Any:
    from sqlalchemy import select

    return select(Touch)


def test_forged_mentor_links_and_cookies_are_refused(clocked: Any) -> None:
    env, _ = clocked
    assert env.client.get("/m/forged.link.token").status_code == 403
    unknown = env.signer.mentor_token("someone@example.com")
    assert env.client.get(f"/m/{unknown}").status_code == 403
    env.client.cookies.set("followup_mentor", "forged-cookie")
    assert env.client.get("/dashboard").status_code == 401
    assert env.client.get("/dashboard/holders/NG-001").status_code == 401


def test_the_sign_in_form_turns_the_token_into_a_session_and_refuses_a_forged_post(web: WebEnv) -> None:
    import re

    form = web.client.get("/dashboard/sign-in")
    assert form.status_code == 200 and "人事担当者のサインイン" in form.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
    assert csrf is not None
    forged = web.client.post("/dashboard/sign-in", data={"token": DASHBOARD_TOKEN, "csrf": "0" * 40})
    assert forged.status_code == 403 and "followup_dashboard" not in forged.headers.get("set-cookie", "")
    wrong = web.client.post("/dashboard/sign-in", data={"token": "guess", "csrf": csrf.group(1)})
    assert wrong.status_code == 401 and "トークンが正しくありません" in wrong.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', wrong.text)  # a fresh form
    assert csrf is not None
    signed = web.client.post(
        "/dashboard/sign-in", data={"token": DASHBOARD_TOKEN, "csrf": csrf.group(1), "next": "//evil.example"}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
    assert web.client.get("/dashboard").status_code == 200
    web.client.post("/dashboard/sign-out")
    assert web.client.get("/dashboard").status_code == 401
