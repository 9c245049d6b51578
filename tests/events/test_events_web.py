"""RSVP by signed link page, by Slack button (real v0 signing) and by LINE postback: each lands once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.channels.line import quick_reply
from followup.channels.slack import answer_blocks
from followup.db.models import EngagementEvent, EventRsvp
from followup.db.session import dispose_engines
from followup.delivery.links import LinkSigner
from followup.engagement.buttons import rsvp_buttons
from followup.web import create_app
from tests.web.test_web_webhooks import line_event, line_post, slack_headers
from tests.web_fixtures import LINE_SECRET, SLACK_SECRET, WebEnv, make_web_context

NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 11/2 12:00 JST, before the 懇親会 deadline (11/13)


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebEnv]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", LINE_SECRET)
    context = make_web_context(tmp_path)
    with TestClient(create_app(context, clock=lambda: NOW), follow_redirects=False) as client:
        yield WebEnv(context, LinkSigner.from_settings(context.settings), client, tmp_path)
    dispose_engines()


def rows(env: WebEnv) -> list[EventRsvp]:
    with env.context.session() as session:
        return list(session.scalars(select(EventRsvp).order_by(EventRsvp.id)))


def rsvp_events(env: WebEnv) -> list[EngagementEvent]:
    return env.events("rsvp")


def test_the_link_page_shows_the_choices_and_the_events_question(web: WebEnv) -> None:
    holder_id = web.holder()
    page = web.client.get(f"/e/{web.signer.rsvp_token(holder_id, 'konshinkai')}")
    assert page.status_code == 200
    for text in ("内定者懇親会", "出席", "欠席", "未定", "食物アレルギー"):
        assert text in page.text


def test_an_rsvp_by_link_lands_once_with_its_answers(web: WebEnv) -> None:
    holder_id = web.holder()
    url = f"/e/{web.signer.rsvp_token(holder_id, 'konshinkai')}"
    form = {"answer": "attending", "q_allergies": "えび"}
    first = web.client.post(url, data=form)
    assert first.status_code == 200 and "「出席」で承りました" in first.text
    web.client.post(url, data=form)  # sent twice (a double click)
    [row] = rows(web)
    assert (row.status, row.seat, row.answers, row.source) == ("attending", 1, {"allergies": "えび"}, "web")
    assert len(rsvp_events(web)) == 1


def test_a_forged_or_other_purpose_token_is_refused(web: WebEnv) -> None:
    holder_id = web.holder()
    opt_out = web.signer.opt_out_token(holder_id, "email")  # signed, but for another purpose
    assert web.client.get(f"/e/{opt_out}").status_code == 403
    assert web.client.post(f"/e/{opt_out}", data={"answer": "attending"}).status_code == 403
    assert rows(web) == []


def test_a_missing_answer_is_asked_again(web: WebEnv) -> None:
    holder_id = web.holder()
    response = web.client.post(f"/e/{web.signer.rsvp_token(holder_id, 'konshinkai')}", data={})
    assert response.status_code == 400 and "お選びください" in response.text


def _slack_press(env: WebEnv, value: str, user: str = "U0HOLDER", trigger: str = "trig-rsvp") -> Any:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "actions": [{"action_id": "survey_answer:rsvp:attending", "value": value, "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **slack_headers(body, ts=int(NOW.timestamp())),
    }
    return env.client.post("/webhooks/slack", content=body, headers=headers)


def test_an_rsvp_by_slack_button_lands_once(web: WebEnv) -> None:
    holder_id = web.holder(slack_user_id="U0HOLDER")
    token = web.signer.rsvp_token(holder_id, "konshinkai")
    blocks = answer_blocks(rsvp_buttons(token, "https://followup.example.jp/e/x"))
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["出席", "欠席", "未定"]
    value = buttons[0]["value"]
    assert _slack_press(web, value).json()["outcomes"] == ["recorded"]
    assert _slack_press(web, value).json()["outcomes"] == ["duplicate"]  # Slack retried
    [row] = rows(web)
    assert (row.holder_id, row.status, row.source) == (holder_id, "attending", "slack")
    assert len(rsvp_events(web)) == 1


def test_a_slack_rsvp_pressed_by_someone_else_records_nothing(web: WebEnv) -> None:
    holder_id = web.holder(slack_user_id="U0HOLDER")
    value = urlencode({"r": web.signer.rsvp_token(holder_id, "konshinkai"), "a": "attending"})
    assert _slack_press(web, value, user="U0OTHER").json()["outcomes"] == ["not_the_holder"]
    assert _slack_press(web, "r=forged&a=attending").json()["outcomes"] == ["forged"]
    assert rows(web) == []


def test_an_rsvp_by_line_postback_lands_once(web: WebEnv) -> None:
    holder_id = web.holder(line_user_id="U4af4980629")
    reply = quick_reply(rsvp_buttons(web.signer.rsvp_token(holder_id, "konshinkai")))
    declined = next(i for i in reply["items"] if i["action"]["label"] == "欠席")
    postback = line_event("postback", "01RSVP", postback={"data": declined["action"]["data"]})
    assert line_post(web, [postback]).json()["outcomes"] == ["recorded"]
    assert line_post(web, [postback]).json()["outcomes"] == ["duplicate"]
    [row] = rows(web)
    assert (row.status, row.source) == ("declined", "line")
    assert len(rsvp_events(web)) == 1


def test_an_invitation_carries_a_working_rsvp_link(web: WebEnv) -> None:
    from followup.db.models import OfferHolder, Touch
    from followup.delivery.deliver import message_context

    holder_id = web.holder()
    with web.context.session() as session:
        holder = session.get(OfferHolder, holder_id)
        touch = Touch(
            key="NG2027-0001:new_grad:event:konshinkai:invitation",
            holder_id=holder_id,
            cadence="new_grad",
            phase="event",
            seq=-120,
            kind="message",
            channel="email",
            template="konshinkai_invite",
            event="konshinkai",
            due_at=NOW,
            status="planned",
        )
        context = message_context(holder, touch, web.context.policy, web.signer)  # type: ignore[arg-type]
    link = context["rsvp_url"]
    assert link and re.match(r"http://testserver/e/\S+$", link)
    assert web.client.get(link.removeprefix("http://testserver")).status_code == 200


def test_the_answer_and_the_attendance_are_on_the_holders_timeline(web: WebEnv) -> None:
    from followup.db.models import OfferHolder
    from followup.events.store import record_attendance
    from followup.holders.timeline import holder_timeline

    holder_id = web.holder()
    web.client.post(f"/e/{web.signer.rsvp_token(holder_id, 'konshinkai')}", data={"answer": "attending"})
    with web.context.session() as session:
        record_attendance(session, holder_id, "konshinkai", "absent", at=NOW)
    with web.context.session() as session:
        holder = session.get(OfferHolder, holder_id)
        assert holder is not None
        timeline = holder_timeline(session, holder)
    [rsvp] = timeline["event_rsvps"]
    assert (rsvp["event"], rsvp["status"], rsvp["seat"], rsvp["attendance"]) == (
        "konshinkai",
        "attending",
        1,
        "absent",
    )
    summaries = {(i["type"], i["summary"]) for i in timeline["items"]}
    assert ("rsvp", "konshinkai: 出席(席 1) / web") in summaries
    assert ("attendance", "konshinkai: 当日欠席") in summaries
