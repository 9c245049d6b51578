# ruff: noqa: F811  (pytest fixtures imported by name are redefined as parameters)
"""What a holder receives in chat, at the stand-ins: the short form (a few lines, one button), not the
email letter, with the survey quick replies / answer buttons and the RSVP buttons still there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from followup.delivery.deliver import deliver_touch
from followup.engagement.buttons import decode_answer, decode_rsvp
from tests.delivery_fixtures import CHANNEL_ENV, NOW, add_holder, add_touch, make_context
from tests.standins.fixtures import line_api, slack_api  # noqa: F401 (fixtures)
from tests.standins.line_api import DEFAULT_TOKEN as LINE_TOKEN
from tests.standins.line_api import LineApi
from tests.standins.slack_api import DEFAULT_TOKEN as SLACK_TOKEN
from tests.standins.slack_api import SlackApi


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch, slack_api: SlackApi, line_api: LineApi) -> pytest.MonkeyPatch:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOLLOWUP_BROKER_URL", raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", LINE_TOKEN)
    monkeypatch.setenv("LINE_API_URL", line_api.base_url)
    return monkeypatch


def _short_form_only(text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "山田様", lines  # 「山田様」, not the letter's 「山田 花子 様」 addressee line
    assert 2 <= len(lines) <= 6 and len(text) <= 400
    assert "――" not in text and "http" not in text  # no signature block, no raw URL
    assert "株式会社サンプル\n人事部" not in text and "配信停止をご希望" not in text  # no opt-out footer


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_line_survey_arrives_as_the_short_form_with_its_quick_replies(
    chat: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-21", line="Uline21")
        touch = add_touch(s, holder, 1, channel="line", template="pulse_survey", kind="survey")
        touch.survey_form = "pulse"
        touch_id = touch.id

    assert deliver_touch(context, touch_id, now=NOW) == "sent"

    [record] = line_api.records
    bubble, card = record["messages"]
    assert bubble["type"] == "text"
    _short_form_only(bubble["text"])
    assert "アンケート" in bubble["text"]
    action = card["template"]["actions"][0]
    assert card["type"] == "template" and action["type"] == "uri" and "/s/" in action["uri"]
    items = card["quickReply"]["items"]  # the first scale question, 1–5, on the last message
    assert len(items) == 5
    assert all(decode_answer(i["action"]["data"]) for i in items)


def test_a_line_invitation_carries_the_rsvp_quick_replies_and_one_answer_page_button(
    chat: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-22", line="Uline22")
        touch = add_touch(s, holder, 1, channel="line", template="konshinkai_invite", event="konshinkai")
        touch.phase, touch.key = "event", "NG-22:event:konshinkai:invitation"
        touch_id = touch.id

    assert deliver_touch(context, touch_id, now=NOW) == "sent"

    [record] = line_api.records
    bubble, card = record["messages"]
    _short_form_only(bubble["text"])
    assert "内定者懇親会" in bubble["text"] and "下のボタン" in bubble["text"]
    assert [a["uri"].split("/")[-2] for a in card["template"]["actions"]] == ["e"]  # the RSVP page
    labels = [i["action"]["label"] for i in card["quickReply"]["items"]]
    assert labels == ["出席", "欠席", "未定"]
    assert all(decode_rsvp(i["action"]["data"]) for i in card["quickReply"]["items"])


def test_a_slack_survey_is_the_short_form_with_its_answer_buttons(
    chat: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-23", slack="Uslack23")
        touch = add_touch(s, holder, 1, channel="slack", template="pulse_survey", kind="survey")
        touch.survey_form = "pulse"
        touch_id = touch.id

    assert deliver_touch(context, touch_id, now=NOW) == "sent"

    [record] = slack_api.records
    _short_form_only(record["text"])  # the notification text is the short form too
    blocks = record["blocks"]
    assert blocks[0]["type"] == "section"
    _short_form_only(blocks[0]["text"]["text"])
    answers = [decode_answer(b["value"]) for b in _buttons(blocks) if "value" in b]
    assert len(answers) >= 15 and all(answers)  # every scale question, 1–5
    links = [b["url"] for b in _buttons(blocks) if "url" in b]
    assert len(links) == 1 and "/s/" in links[0]  # one survey link button, not two
    assert blocks[-1]["type"] == "context" and "/opt-out/" in blocks[-1]["elements"][0]["text"]


def test_a_slack_invitation_is_the_short_form_with_the_rsvp_buttons(
    chat: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-24", slack="Uslack24")
        touch = add_touch(s, holder, 1, channel="slack", template="konshinkai_invite", event="konshinkai")
        touch.phase, touch.key = "event", "NG-24:event:konshinkai:invitation"
        touch_id = touch.id

    assert deliver_touch(context, touch_id, now=NOW) == "sent"

    [record] = slack_api.records
    _short_form_only(record["text"])
    buttons = _buttons(record["blocks"])
    assert [b["text"]["text"] for b in buttons if "value" in b] == ["出席", "欠席", "未定"]
    assert all(decode_rsvp(b["value"]) for b in buttons if "value" in b)
    assert len([b for b in buttons if "url" in b]) == 1  # the answer page once (questions: アレルギー)


def test_a_message_touch_in_chat_is_far_shorter_than_its_email(
    chat: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-25", line="Uline25", slack="Uslack25")
        line_id = add_touch(s, holder, 1, channel="line", template="first_day_schedule").id
        slack_id = add_touch(s, holder, 2, channel="slack", template="mentor_intro").id

    assert deliver_touch(context, line_id, now=NOW) == "sent"
    assert deliver_touch(context, slack_id, now=NOW) == "sent"

    [line_record] = line_api.records
    assert [m["type"] for m in line_record["messages"]] == ["text"]  # no link: one bubble
    text = line_record["messages"][0]["text"]
    _short_form_only(text)
    assert "9:00" in text and "本社1階 受付" in text  # place and time from config, in the short form
    assert "配信を停止された方にも" in text  # an essential notice says why it still comes
    [slack_record] = slack_api.records
    _short_form_only(slack_record["text"])
    assert "田中 健太" in slack_record["text"]  # the mentor from policy.mentors
    section, footer = slack_record["blocks"]
    assert section["type"] == "section" and footer["type"] == "context"
    # Slack has no "block the account": the follow-up opt-out is a small link line under the message
    assert "配信停止は<http" in footer["elements"][0]["text"] and "/opt-out/" in footer["elements"][0]["text"]


def test_an_essential_notice_in_slack_carries_no_opt_out_line(
    chat: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        holder = add_holder(s, "NG-26", slack="Uslack26")
        first_day = add_touch(s, holder, 1, channel="slack", template="first_day_schedule").id
        welcome = add_touch(s, holder, 2, channel="slack", template="welcome_president").id

    assert deliver_touch(context, first_day, now=NOW) == "sent"
    assert deliver_touch(context, welcome, now=NOW) == "sent"

    for record in slack_api.records:  # 入社手続き and the president's own letter: no bulk opt-out
        _short_form_only(record["text"])
        assert [b["type"] for b in record["blocks"]] == ["section"]
