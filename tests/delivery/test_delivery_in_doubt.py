# ruff: noqa: F811  (pytest fixtures imported by name are redefined as parameters)
"""Exactly once, measured honestly: sends whose outcome is unknown (in doubt), provider delays, per-channel
back-off and the reused SMTP session, against the real clients and loopback stand-ins."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from followup.channels.base import MAX_PROVIDER_DELAY, OutboundMessage
from followup.channels.email import DATA_TIMEOUT, EmailChannel, message_id_for
from followup.channels.slack import METADATA_EVENT, SlackChannel
from followup.db.models import Touch
from followup.delivery.deliver import deliver_touch, deliverer_for, run_due
from tests.delivery_fixtures import (
    CHANNEL_ENV,
    NOW,
    add_holder,
    add_touch,
    attempts_of,
    make_context,
    touch_state,
)
from tests.standins.fixtures import line_api, slack_api, smtp_sink  # noqa: F401 (fixtures)
from tests.standins.slack_api import DEFAULT_TOKEN as SLACK_TOKEN
from tests.standins.slack_api import SlackApi
from tests.standins.smtp_sink import SmtpSink

SENDER = "saiyo@example.co.jp"  # channels.email.from in config/followup.yaml


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch, smtp_sink: SmtpSink, slack_api: SlackApi) -> pytest.MonkeyPatch:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOLLOWUP_BROKER_URL", raising=False)
    monkeypatch.setenv("SMTP_URL", smtp_sink.url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    return monkeypatch


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


def email_touches(context: object, n: int) -> list[int]:
    ids = []
    with context.session() as s:  # type: ignore[attr-defined]
        for i in range(n):
            holder = add_holder(s, f"NG-{i}", email=f"holder{i}@example.ac.jp")
            ids.append(add_touch(s, holder, 1).id)
    return ids


def passes(context: object, ids: list[int], count: int) -> None:
    """``count`` dispatch passes, each far enough after the last for every retry to be due."""
    for n in range(count):
        moment = NOW + timedelta(hours=2 * n)
        for touch_id in ids:
            deliver_touch(context, touch_id, now=moment)  # type: ignore[arg-type]


# --- email: the line drops after the final "." -----------------------------------------------------------


def test_an_email_whose_line_drops_after_data_is_resent_once_with_the_same_message_id(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Given a relay that queues every message and then drops the line before its 250 (six touches),
    when the retry passes run, then each message arrives twice at most — the one counted in-doubt resend,
    with the same Message-ID — and the touch ends ``in_doubt`` (not resent on every pass: 6 → 24 before)."""
    context = make_context(tmp_path, sqlite(tmp_path), max_attempts=8)
    ids = email_touches(context, 6)
    smtp_sink.drop_after_data_n = 1000

    passes(context, ids, 8)

    assert len(smtp_sink.messages) == 12
    for touch_id in ids:
        touch = touch_state(context, touch_id)
        assert smtp_sink.count_message_id(message_id_for(touch.key, SENDER)) == 2
        assert (touch.status, touch.in_doubt_resends) == ("in_doubt", 1)
        outcomes = [a.outcome for a in attempts_of(context, touch_id)]
        assert outcomes == ["in_doubt", "in_doubt", "in_doubt"]  # sent, resent, then not again


def test_an_in_doubt_email_whose_resend_is_answered_ends_sent_and_counted(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    (touch_id,) = email_touches(context, 1)
    smtp_sink.drop_after_data_n = 1

    assert deliver_touch(context, touch_id, now=NOW) == "transient: in doubt, retry planned"
    assert deliver_touch(context, touch_id, now=NOW + timedelta(hours=2)) == "sent"

    touch = touch_state(context, touch_id)
    assert (touch.status, touch.in_doubt_resends, touch.send_started_at) == ("sent", 1, None)
    assert smtp_sink.count_message_id(message_id_for(touch.key, SENDER)) == 2


def test_it_waits_for_a_slow_final_reply_as_rfc_5321_says(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """A relay answering the end of DATA after 1.5 s is waited for, although commands time out after 1 s:
    the final-reply timeout is its own setting (10 minutes by default)."""
    assert DATA_TIMEOUT == 600
    smtp_sink.reply_delay = 1.5
    channel = EmailChannel(smtp_sink.url, SENDER, timeout=1)
    message = OutboundMessage("k:slow", "email", "slow@example.ac.jp", "件名", "本文")

    channel.send(message)
    channel.close()

    assert smtp_sink.count_for("slow@example.ac.jp") == 1


def test_the_final_reply_timeout_is_a_setting(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path), smtp_data_timeout=0.3)
    (touch_id,) = email_touches(context, 1)
    smtp_sink.reply_delay = 1.0

    assert deliver_touch(context, touch_id, now=NOW) == "transient: in doubt, retry planned"
    assert attempts_of(context, touch_id)[0].outcome == "in_doubt"


# --- email: one reused SMTP session per process for a batch ----------------------------------------------


def test_a_batch_goes_through_one_reused_smtp_session_that_reconnects_when_the_relay_drops_it(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Given a relay that ends every session after two messages, when a batch of seven is delivered, then
    each message arrives exactly once, every touch has one ``sent`` attempt, and four sessions were used
    (not seven)."""
    context = make_context(tmp_path, sqlite(tmp_path))
    ids = email_touches(context, 7)
    smtp_sink.close_sessions_after = 2

    summary = run_due(context, NOW)

    assert summary.count("sent") == 7
    assert len(smtp_sink.messages) == 7
    for touch_id in ids:
        touch = touch_state(context, touch_id)
        assert smtp_sink.count_message_id(message_id_for(touch.key, SENDER)) == 1
        assert [a.outcome for a in attempts_of(context, touch_id)] == ["sent"]
    assert smtp_sink.sessions == 4


# --- a worker killed after the send started ------------------------------------------------------------


def kill_after_send_started(context: object, touch_id: int) -> None:
    """What a worker killed between "send started" and the result leaves behind."""
    with context.session() as s:  # type: ignore[attr-defined]
        s.execute(
            update(Touch)
            .where(Touch.id == touch_id)
            .values(
                status="sending",
                claimed_at=NOW - timedelta(hours=1),
                claimed_by="dead-worker#1",
                send_started_at=NOW - timedelta(hours=1),
            )
        )


def test_a_claim_left_by_a_killed_worker_after_the_send_started_is_recovered_in_doubt(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    (touch_id,) = email_touches(context, 1)
    kill_after_send_started(context, touch_id)

    summary = run_due(context, NOW)  # recovered, then resent once (counted)
    assert (summary.recovered, summary.count("sent")) == (1, 1)
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["in_doubt", "sent"]
    assert touch_state(context, touch_id).in_doubt_resends == 1

    kill_after_send_started(context, touch_id)  # killed again in the same window: no second resend
    with context.session() as s:
        s.execute(update(Touch).where(Touch.id == touch_id).values(sent_at=None))
    summary = run_due(context, NOW + timedelta(minutes=1))
    assert summary.count("in_doubt") == 1
    assert touch_state(context, touch_id).status == "in_doubt"
    assert len(smtp_sink.messages) == 1


# --- Slack: look for the touch key before any resend ----------------------------------------------------


def test_a_slack_message_carries_its_touch_key_as_metadata() -> None:
    payload = SlackChannel.build_payload(OutboundMessage("NG-1:x:y:1", "slack", "U1", "件名", "本文"))
    assert payload["metadata"] == {"event_type": METADATA_EVENT, "event_payload": {"touch_key": "NG-1:x:y:1"}}


def test_an_in_doubt_slack_post_is_found_in_the_history_and_not_posted_again(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    """Given a Slack API that posts the message but drops the line before answering, when the touch is
    retried, then conversations.history finds the earlier post by its metadata and nothing is reposted."""
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-S", slack="U123"), 1, channel="slack").id
    slack_api.drop_next(1)

    first = deliver_touch(context, touch_id, now=NOW)
    second = deliver_touch(context, touch_id, now=NOW + timedelta(hours=2))

    assert (first, second) == ("transient: in doubt, retry planned", "sent")
    assert slack_api.count_for("U123") == 1
    touch = touch_state(context, touch_id)
    assert touch.provider_id == f"DU123:{slack_api.records[0]['ts']}"
    attempts = attempts_of(context, touch_id)
    assert [a.outcome for a in attempts] == ["in_doubt", "sent"]
    assert "found by metadata" in (attempts[1].error or "")


def test_a_slack_post_that_never_happened_is_posted_after_looking(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-S", slack="U123"), 1, channel="slack").id
    kill_after_send_started(context, touch_id)

    assert run_due(context, NOW).count("sent") == 1
    assert slack_api.count_for("U123") == 1


# --- provider delays -----------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["1e15", "inf", "-5", "nan"])
def test_an_absurd_retry_after_is_clamped_and_the_touch_is_not_left_sending(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi, retry_after: str
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-S", slack="U123"), 1, channel="slack").id
    slack_api.rate_limit(1, retry_after=retry_after)

    assert deliver_touch(context, touch_id, now=NOW) == "transient: retry planned"

    touch = touch_state(context, touch_id)
    assert touch.status == "planned"
    assert touch.due_at <= NOW + timedelta(seconds=MAX_PROVIDER_DELAY) + timedelta(days=4)


def test_a_slack_api_answering_429_forever_is_probed_once_per_back_off_not_once_per_touch(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        for i in range(6):
            add_touch(s, add_holder(s, f"NG-S{i}", slack=f"U{i}"), 1, channel="slack")
    slack_api.rate_limit(0, retry_after=30, forever=True)

    first = run_due(context, NOW)
    assert slack_api.requests == 1  # one probe; the other five wait without calling Slack
    assert (first.count("transient"), first.count("deferred")) == (1, 5)
    assert run_due(context, NOW + timedelta(seconds=10)).dispatched == 0  # all still waiting
    run_due(context, NOW + timedelta(seconds=31))
    assert slack_api.requests == 2  # the next probe, again only one
    assert deliverer_for(context).gates.waiting("slack", NOW + timedelta(seconds=32)) is not None
