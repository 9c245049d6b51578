"""The HR dashboard and JSON API: refused without the token, and one holder's whole timeline with it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from followup.db.models import EngagementEvent, Flag, OfferHolder, Touch
from followup.holders.importer import change_status
from followup.holders.timeline import holder_timeline
from followup.web import create_app
from tests import web_fixtures
from tests.web_fixtures import DASHBOARD_TOKEN, WebEnv, make_web_context

BEARER = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
T0 = datetime(2026, 6, 22, 1, 0, tzinfo=UTC)

web = web_fixtures.web  # the fixture, used by name


def _story(env: WebEnv) -> int:
    """A holder with a sent survey, an answer, a reply, an acceptance, a planned touch and an open flag."""
    holder_id = env.holder(slack_user_id="U0HOLDER")
    touch_id = env.survey_touch(holder_id)
    form = {"motivation": "2", "anxiety": "4", "understanding": "3", "situation": "他社も検討している"}
    env.client.post(f"/s/{env.signer.survey_token(touch_id)}", data=form)
    with env.context.session() as session:
        holder = session.get(OfferHolder, holder_id)
        assert holder is not None
        change_status(session, holder, "accepted", at=T0 + timedelta(days=1), source="cli")
        session.add(
            EngagementEvent(
                holder_id=holder_id,
                at=T0 + timedelta(days=2),
                kind="reply",
                channel="slack",
                payload={"text": "よろしくお願いします"},
            )
        )
        session.add(
            Touch(
                key=f"{holder_id}:new_grad:initial:4",
                holder_id=holder_id,
                cadence="new_grad",
                phase="initial",
                seq=4,
                kind="message",
                channel="email",
                template="checkin",
                due_at=T0 + timedelta(days=7),
                status="planned",
            )
        )
        session.add(
            Flag(
                holder_id=holder_id,
                rule="declining_signal",
                severity="high",
                reason="パルスサーベイで「他社も検討している」と回答",
                first_seen=T0,
                last_seen=T0,
            )
        )
        session.add(
            Flag(
                holder_id=holder_id,
                rule="neglected",
                severity="high",
                reason="解決済み",
                first_seen=T0,
                last_seen=T0,
                resolved_at=T0,
            )
        )
    return holder_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"hr:wrong").decode()},
        {"Authorization": "Basic !!!notbase64"},
        {"Cookie": "followup_dashboard=forged"},
    ],
    ids=["none", "wrong-bearer", "wrong-basic", "garbage-basic", "forged-cookie"],
)
def test_the_dashboard_and_api_refuse_without_the_token(web: WebEnv, headers: dict[str, str]) -> None:
    _story(web)
    for path in (
        "/dashboard",
        "/dashboard/holders",
        "/dashboard/holders/NG2027-0001",
        "/api/holders",
        "/api/holders/NG2027-0001",
    ):
        response = web.client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert "山田" not in response.text
    assert web.client.get("/dashboard?token=wrong").status_code == 401


def test_bearer_and_basic_auth_open_the_api(web: WebEnv) -> None:
    _story(web)
    assert web.client.get("/api/holders", headers=BEARER).status_code == 200
    basic = base64.b64encode(f"any-user:{DASHBOARD_TOKEN}".encode()).decode()
    assert web.client.get("/dashboard", headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_a_token_login_sets_a_cookie_and_drops_the_token_from_the_address(web: WebEnv) -> None:
    response = web.client.get(f"/dashboard/holders/NG2027-0001?token={DASHBOARD_TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/holders/NG2027-0001"
    cookie = response.cookies.get("followup_dashboard")
    assert cookie and DASHBOARD_TOKEN not in cookie
    assert "HttpOnly" in response.headers["set-cookie"]
    assert web.client.get("/dashboard", cookies={"followup_dashboard": cookie}).status_code == 200


def test_without_a_configured_token_the_dashboard_is_not_served(tmp_path: Path) -> None:
    context = make_web_context(tmp_path, dashboard_token="")
    with TestClient(create_app(context)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer "},
            {"Authorization": "Basic " + base64.b64encode(b"a:").decode()},
        ):
            assert client.get("/api/holders", headers=headers).status_code == 503
        assert client.get("/dashboard?token=").status_code == 503


def test_the_holders_list_shows_status_phase_touches_pulse_and_open_flags(web: WebEnv) -> None:
    _story(web)
    [row] = web.client.get("/api/holders", headers=BEARER).json()["holders"]
    assert row["external_id"] == "NG2027-0001"
    assert row["status"] == "accepted"
    assert row["phase"] == "initial"
    assert row["last_touch"]["template"] == "pulse_survey"
    assert row["next_touch"]["template"] == "checkin"
    assert row["next_touch"]["due_at"] == "2026-06-29T01:00:00+00:00"
    assert row["pulse"] == [2.33]
    assert [f["rule"] for f in row["flags"]] == ["declining_signal"]  # the resolved one is not listed
    html = web.client.get("/dashboard/holders", headers=BEARER).text
    assert "内定承諾" in html and "内定直後期" in html and "辞退の兆候" in html
    assert ">declining_signal" not in html  # only as a filter's option value, never as text
    assert "6/29(月) 10:00" in html  # the next touch in Tokyo time
    assert "<polyline" in html


def test_one_holders_timeline_has_touches_answers_replies_changes_and_flags(web: WebEnv) -> None:
    holder_id = _story(web)
    data = web.client.get("/api/holders/NG2027-0001", headers=BEARER).json()
    assert data["holder"]["status"] == "accepted"
    assert [t["status"] for t in data["touches"]] == ["sent", "planned"]
    assert set(data["touches"][0]) >= {
        "external_id",
        "cadence",
        "phase",
        "kind",
        "channel",
        "template",
        "due_at",
        "status",
    }
    assert data["responses"][0]["answers"]["situation"] == "他社も検討している"
    assert data["responses"][0]["declining"] is True
    assert [(c["field"], c["old_value"], c["new_value"]) for c in data["changes"]] == [
        ("status", "offered", "accepted")
    ]
    assert {e["kind"] for e in data["events"]} == {"answer", "reply"}
    assert {f["rule"] for f in data["flags"]} == {"declining_signal", "neglected"}
    kinds = [item["type"] for item in data["items"]]
    assert {"touch", "answer", "reply", "change", "flag"} <= set(kinds)
    assert [item["at"] for item in data["items"]] == sorted(item["at"] for item in data["items"])
    # the same data as the CLI's `holders show --json` gets
    with web.context.session() as session:
        holder = session.get(OfferHolder, holder_id)
        assert holder_timeline(session, holder, web.context.policy) == data  # type: ignore[arg-type]
    page = web.client.get("/dashboard/holders/NG2027-0001", headers=BEARER).text
    assert "よろしくお願いします" in page and "辞退の兆候" in page
    assert "ステータス: 内定(承諾前) → 内定承諾" in page  # the change in Japanese, not offered → accepted


def test_an_unknown_holder_is_404(web: WebEnv) -> None:
    assert web.client.get("/api/holders/NOPE", headers=BEARER).status_code == 404
    assert web.client.get("/dashboard/holders/NOPE", headers=BEARER).status_code == 404


def test_the_openapi_document_describes_the_json_api_only(web: WebEnv) -> None:
    spec = web.client.get("/openapi.json").json()
    assert {"/api/holders", "/api/holders/{external_id}", "/healthz", "/readyz"} <= set(spec["paths"])
    assert not any(path.startswith(("/s/", "/opt-out", "/dashboard")) for path in spec["paths"])


def test_an_hr_edited_page_template_is_rendered_in_the_sandbox(tmp_path: Path) -> None:
    from jinja2.exceptions import SecurityError

    from followup.web.state import templates_for as _templates

    (tmp_path / "evil.html").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    with pytest.raises(SecurityError):
        _templates(tmp_path).get_template("evil.html").render()
