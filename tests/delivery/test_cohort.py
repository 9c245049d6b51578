"""Cohort channel (内定者同士の交流): accepted holders are invited to their track's Slack channel once, with
a peer introduction naming who joined; a signed member_joined_channel records joining once; who has not
joined four weeks after the invitation is flagged (cohort_not_joined)."""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from followup.db.models import Flag, OfferHolder, Touch
from followup.delivery.deliver import run_due
from followup.flags.store import evaluate_and_persist
from followup.planning.store import plan_tick
from tests import web_fixtures
from tests.standins.fixtures import slack_api_fixture  # noqa: F401
from tests.standins.slack_api import DEFAULT_TOKEN, SlackApi
from tests.web.test_web_webhooks import slack_post
from tests.web_fixtures import WebEnv

web = web_fixtures.web

COHORT = "C0COHORT27"
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Mon 10:00 in Tokyo


@pytest.fixture
def slack_env(web: WebEnv, slack_api: SlackApi, monkeypatch: pytest.MonkeyPatch) -> SlackApi:
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("SLACK_COHORT_CHANNEL", COHORT)
    return slack_api


def holders(web: WebEnv) -> dict[str, int]:
    return {
        "NG-1": web.holder("NG-1", name="山田 花子", status="accepted", slack_user_id="U0000001"),
        "NG-2": web.holder("NG-2", name="佐藤 健太", status="accepted", slack_user_id="U0000002"),
        "NG-3": web.holder("NG-3", name="鈴木 美咲", status="offered", slack_user_id="U0000003"),
        "NG-4": web.holder("NG-4", name="高橋 翔太", status="accepted"),  # no Slack id
        "MC-1": web.holder(
            "MC-1", name="田中 陽菜", status="accepted", track="mid_career", slack_user_id="U0000005"
        ),
    }


def joined(user: str, at: datetime, event_id: str, channel: str = COHORT) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(at.timestamp()),
        "event": {"type": "member_joined_channel", "user": user, "channel": channel},
    }


def channel_posts(api: SlackApi) -> list[str]:
    return [r["text"] for r in api.state()["records"] if r.get("channel") == COHORT and "text" in r]


def test_accepted_holders_are_invited_once_and_introduced_by_name(web: WebEnv, slack_env: SlackApi) -> None:
    ids = holders(web)
    run_due(web.context, NOW)
    run_due(web.context, NOW + timedelta(minutes=1))  # a second tick invites nobody again

    assert slack_env.members[COHORT] == ["U0000001", "U0000002"]
    [post] = channel_posts(slack_env)
    assert post.startswith(
        "2027年度 新卒内定者の交流チャンネルに、新しく山田 花子さん、佐藤 健太さんが参加しました!"
    )

    with web.context.session() as session:
        session.get(OfferHolder, ids["NG-3"]).status = "accepted"  # type: ignore[union-attr]
    run_due(web.context, NOW + timedelta(days=1))
    assert slack_env.members[COHORT] == ["U0000001", "U0000002", "U0000003"]
    assert channel_posts(slack_env)[-1].startswith(
        "2027年度 新卒内定者の交流チャンネルに、新しく鈴木 美咲さんが参加しました"
    )
    assert len(web.events("cohort_invite")) == 3


def test_a_join_is_recorded_once_and_the_rule_flags_who_has_not_joined_after_four_weeks(
    web: WebEnv, slack_env: SlackApi
) -> None:
    ids = holders(web)
    run_due(web.context, NOW)

    first = slack_post(web, joined("U0000001", NOW + timedelta(minutes=1), "EvJ1"))
    again = slack_post(web, joined("U0000001", NOW + timedelta(minutes=1), "EvJ1"))
    other = slack_post(web, joined("U0000002", NOW, "EvJ2", channel="C0RANDOM"))
    assert [r.json()["outcome"] for r in (first, again, other)] == ["recorded", "duplicate", "ignored"]
    [join] = web.events("cohort_join")
    assert join.holder_id == ids["NG-1"] and join.payload == {"channel": COHORT}

    limit = NOW + timedelta(weeks=4)
    evaluate_and_persist(web.context, limit)
    with web.context.session() as session:
        assert not list(session.scalars(select(Flag).where(Flag.rule == "cohort_not_joined")))
    evaluate_and_persist(web.context, limit + timedelta(seconds=1))
    with web.context.session() as session:
        [flag] = session.scalars(select(Flag).where(Flag.rule == "cohort_not_joined"))
        assert flag.holder_id == ids["NG-2"] and flag.since == limit
        assert (
            flag.reason
            == "内定者同士の交流チャンネルに11/2に招待しましたが、4週間を過ぎても参加していません。"
        )


def test_a_refused_invitation_is_tried_again_next_tick(web: WebEnv, slack_env: SlackApi) -> None:
    holders(web)
    slack_env.rate_limit(1, retry_after=1)
    run_due(web.context, NOW)
    assert COHORT not in slack_env.members and web.events("cohort_invite") == []
    run_due(web.context, NOW + timedelta(minutes=5))
    assert slack_env.members[COHORT] == ["U0000001", "U0000002"]


def test_without_a_cohort_channel_nobody_is_invited(
    web: WebEnv, slack_api: SlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.delenv("SLACK_COHORT_CHANNEL", raising=False)
    holders(web)
    run_due(web.context, NOW)
    assert slack_api.members == {} and web.events("cohort_invite") == []
    assert json.dumps(slack_api.state()["records"]) == "[]"


def test_the_line_group_invitation_goes_once_to_each_accepted_holder(
    web: WebEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINE_COHORT_URL", "https://line.me/R/ti/g/AbCdEf123")
    holders(web)
    plan_tick(web.context, NOW)
    plan_tick(web.context, NOW + timedelta(minutes=1))
    with web.context.session() as session:
        keys = list(session.scalars(select(Touch.key).where(Touch.key.like("announce:cohort-%"))))
    assert sorted(keys) == [f"announce:cohort-new_grad:{x}" for x in ("NG-1", "NG-2", "NG-4")]

    run_due(web.context, NOW + timedelta(minutes=2))
    outbox = Path(web.context.settings.var_dir) / "outbox"
    [mail_file] = outbox.glob("announce_cohort-new_grad_NG-1*.eml")
    mail = email.message_from_bytes(mail_file.read_bytes(), policy=email_policy.default)
    assert "交流グループのご案内" in str(mail["Subject"])
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "https://line.me/R/ti/g/AbCdEf123" in body and "ご参加は任意です" in body
