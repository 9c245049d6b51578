# ruff: noqa: F811  (pytest fixtures imported by name are redefined as parameters)
"""Delivery in one process (embedded mode): claim, fallback, cap, retries and recording, against the real
clients talking to loopback stand-ins. Time is passed in as ``now``, so retries need no sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from followup.channels.line import retry_key_for
from followup.db.models import ChannelOptOut, Touch
from followup.delivery.deliver import (
    EnqueueMemo,
    backoff_delay,
    build_channels,
    cap_frees_at,
    deliver_touch,
    deliverer_for,
    run_due,
)
from followup.durations import Interval
from tests.delivery_fixtures import (
    CHANNEL_ENV,
    NOW,
    add_holder,
    add_touch,
    attempts_of,
    copy_config,
    make_context,
    touch_state,
)
from tests.standins.fixtures import line_api, slack_api, smtp_sink  # noqa: F401 (fixtures)
from tests.standins.line_api import DEFAULT_TOKEN as LINE_TOKEN
from tests.standins.line_api import LineApi
from tests.standins.slack_api import DEFAULT_TOKEN as SLACK_TOKEN
from tests.standins.slack_api import SlackApi
from tests.standins.smtp_sink import SmtpSink


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOLLOWUP_BROKER_URL", raising=False)
    return monkeypatch


@pytest.fixture
def wired(
    clean_env: pytest.MonkeyPatch, smtp_sink: SmtpSink, slack_api: SlackApi, line_api: LineApi
) -> pytest.MonkeyPatch:
    clean_env.setenv("SMTP_URL", smtp_sink.url)
    clean_env.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    clean_env.setenv("SLACK_API_URL", slack_api.api_url)
    clean_env.setenv("LINE_CHANNEL_ACCESS_TOKEN", LINE_TOKEN)
    clean_env.setenv("LINE_API_URL", line_api.base_url)
    return clean_env


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


def test_it_delivers_a_japanese_email_with_text_and_html_parts_once(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-1", email="hanako@example.ac.jp")
        touch_id = add_touch(s, holder, 1, template="welcome_president").id

    assert deliver_touch(context, touch_id, now=NOW) == "sent"
    assert deliver_touch(context, touch_id, now=NOW) == "skipped: already claimed/sent"

    assert smtp_sink.count_for("hanako@example.ac.jp") == 1
    message: EmailMessage = smtp_sink.messages[0].message()
    assert "内定のお祝い" in str(message["Subject"])
    assert "株式会社サンプル 人事部" in str(message["From"])
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert "山田 花子 様" in plain.get_content()
    assert "山田 花子" in html.get_content()
    # the president's own letter (meta.yaml opt_out_link: false) carries no bulk-mail opt-out
    assert message["List-Unsubscribe"] is None
    touch = touch_state(context, touch_id)
    assert (touch.status, touch.attempts, touch.provider_id) == ("sent", 1, str(message["Message-ID"]))
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["sent"]


def test_it_posts_slack_and_line_messages_through_the_real_clients(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi, line_api: LineApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-2", slack="U123", line="Uabc")
        slack_id = add_touch(s, holder, 1, channel="slack", template="mentor_intro").id
        line_id = add_touch(s, holder, 2, channel="line", template="checkin").id

    assert deliver_touch(context, slack_id, now=NOW) == "sent"
    assert deliver_touch(context, line_id, now=NOW) == "sent"

    assert slack_api.count_for("U123") == 1
    assert "田中 健太" in slack_api.records[0]["text"]  # the mentor's name from policy.mentors
    assert line_api.count_for("Uabc") == 1
    assert line_api.records[0]["retry_key"] == retry_key_for("NG-2:new_grad:initial:2")


def test_an_smtp_outage_is_retried_with_backoff_then_delivered_once(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-3", email="taro@example.ac.jp"), 1).id
    smtp_sink.stop()

    assert deliver_touch(context, touch_id, now=NOW) == "transient: retry planned"
    first = touch_state(context, touch_id)
    assert first.status == "planned" and first.due_at > NOW and "SMTP unavailable" in (first.last_error or "")
    assert run_due(context, NOW).dispatched == 0  # not due again yet

    smtp_sink.start()
    later = first.due_at
    assert deliver_touch(context, touch_id, now=later) == "sent"
    assert smtp_sink.count_for("taro@example.ac.jp") == 1
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["transient", "sent"]
    assert touch_state(context, touch_id).attempts == 2


def test_a_slack_429_waits_at_least_retry_after(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path), retry_base=0.01)
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-4", slack="U4"), 1, channel="slack").id
    slack_api.rate_limit(1, retry_after=30)

    assert deliver_touch(context, touch_id, now=NOW) == "transient: retry planned"
    assert touch_state(context, touch_id).due_at >= NOW + timedelta(seconds=30)
    assert deliver_touch(context, touch_id, now=NOW + timedelta(seconds=29)).startswith("skipped")
    assert deliver_touch(context, touch_id, now=NOW + timedelta(seconds=31)) == "sent"
    assert slack_api.count_for("U4") == 1
    assert "rate limited" in (attempts_of(context, touch_id)[0].error or "")


def test_a_line_500_then_success_sends_one_message_with_the_same_retry_key(
    wired: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-5", line="U5"), 1, channel="line").id
    line_api.fail_next(1, 500)

    assert deliver_touch(context, touch_id, now=NOW) == "transient: retry planned"
    assert deliver_touch(context, touch_id, now=touch_state(context, touch_id).due_at) == "sent"
    assert line_api.count_for("U5") == 1
    assert line_api.requests == 2
    assert line_api.records[0]["retry_key"] == retry_key_for("NG-5:new_grad:initial:1")


def test_a_line_push_accepted_before_a_crash_is_not_sent_twice(
    wired: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi
) -> None:
    """The worst window: LINE accepted the push, the worker died before recording it."""
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-6", line="U6"), 1, channel="line").id
    deliverer = deliverer_for(context)
    prepared = None
    with context.session() as s:
        s.execute(select(Touch).where(Touch.id == touch_id))
        prepared = deliverer._prepare(s, touch_id, NOW, "dead-worker#1", "dead-worker")
        touch = s.get(Touch, touch_id)
        assert touch is not None
        touch.status, touch.claimed_at, touch.claimed_by = "sending", NOW, "dead-worker#1"
    assert not isinstance(prepared, str)
    deliverer.channels["line"].send(prepared.message)  # accepted by LINE; then the worker "dies"

    later = NOW + timedelta(seconds=context.settings.claim_timeout + 1)
    summary = run_due(context, later)
    assert summary.recovered == 1
    assert summary.outcomes["sent"] == 1
    assert line_api.count_for("U6") == 1  # the retry key made LINE answer 409: counted as sent
    assert touch_state(context, touch_id).status == "sent"


def test_permanent_errors_fail_at_once_and_are_recorded(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink, slack_api: SlackApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        bounced = add_touch(s, add_holder(s, "NG-7", email="nobody@example.com"), 1).id
        unknown = add_touch(s, add_holder(s, "NG-8", slack="Wnobody"), 1, channel="slack").id

    assert deliver_touch(context, bounced, now=NOW) == "failed: permanent"
    assert deliver_touch(context, unknown, now=NOW) == "failed: permanent"
    assert "550" in (touch_state(context, bounced).last_error or "")
    assert "user_not_found" in (touch_state(context, unknown).last_error or "")
    assert [a.outcome for a in attempts_of(context, bounced)] == ["permanent"]
    assert smtp_sink.count_for("nobody@example.com") == 0


def test_transient_errors_give_up_after_max_attempts(
    wired: pytest.MonkeyPatch, tmp_path: Path, line_api: LineApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path), max_attempts=3)
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-9", line="U9"), 1, channel="line").id
    line_api.fail_next(10, 503)
    outcomes = []
    moment = NOW
    for _ in range(3):
        outcomes.append(deliver_touch(context, touch_id, now=moment))
        moment = touch_state(context, touch_id).due_at + timedelta(seconds=1)
    assert outcomes == ["transient: retry planned"] * 2 + ["failed: gave up after 3 attempts"]
    assert len(attempts_of(context, touch_id)) == 3


def test_an_hr_template_reaching_for_python_internals_fails_safely(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    config = copy_config(tmp_path)
    evil = tmp_path / "templates" / "messages" / "ja" / "evil"
    evil.mkdir()
    (evil / "subject.j2").write_text("ご案内 {{ ''.__class__.__mro__ }}\n")
    (evil / "text.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    context = make_context(tmp_path, sqlite(tmp_path), config=config)
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-10", email="x@example.ac.jp"), 1, template="evil").id

    assert deliver_touch(context, touch_id, now=NOW) == "failed: template"
    touch = touch_state(context, touch_id)
    assert touch.status == "failed" and "evil" in (touch.last_error or "")
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["permanent"]
    assert smtp_sink.messages == []


def test_an_opt_out_after_planning_falls_back_to_the_next_channel(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink, line_api: LineApi
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-11", email="jiro@example.ac.jp", line="U11")
        touch_id = add_touch(s, holder, 1, channel="line").id
        s.add(ChannelOptOut(holder_id=holder.id, channel="line", at=NOW))

    assert deliver_touch(context, touch_id, now=NOW) == "sent"
    assert line_api.count_for("U11") == 0
    assert smtp_sink.count_for("jiro@example.ac.jp") == 1
    assert touch_state(context, touch_id).channel == "email"


def test_a_holder_with_no_reachable_channel_is_recorded_not_dropped(
    wired: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-12", email="saburo@example.ac.jp")
        touch_id = add_touch(s, holder, 1).id
        s.add(ChannelOptOut(holder_id=holder.id, channel="email", at=NOW))

    assert deliver_touch(context, touch_id, now=NOW) == "failed: unreachable"
    assert "unreachable" in (attempts_of(context, touch_id)[0].error or "")


def test_a_declined_holder_is_not_contacted(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-13", email="d@example.ac.jp", status="declined"), 1).id

    assert deliver_touch(context, touch_id, now=NOW) == "cancelled: holder declined"
    assert smtp_sink.messages == []


def test_over_contact_enforcement_suppresses_then_sends_when_the_window_frees(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))  # example policy: 3 touches per 7 days, enforced
    with context.session() as s:
        holder = add_holder(s, "NG-14", email="busy@example.ac.jp")
        for seq, days_ago in ((1, 6), (2, 3), (3, 1)):
            sent = NOW - timedelta(days=days_ago)
            add_touch(s, holder, seq, status="sent", due_at=sent, sent_at=sent)
        touch_id = add_touch(s, holder, 4).id

    assert deliver_touch(context, touch_id, now=NOW) == "suppressed: over_contacted"
    touch = touch_state(context, touch_id)
    frees = NOW - timedelta(days=6) + timedelta(days=7, seconds=1)
    assert (touch.status, touch.due_at, touch.suppressed_count) == ("planned", frees, 1)
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["suppressed"]
    assert smtp_sink.messages == []

    assert run_due(context, frees).outcomes == {"sent": 1}
    assert smtp_sink.count_for("busy@example.ac.jp") == 1


def test_a_due_manual_touch_reminds_its_assignee(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-15", email="h@example.ac.jp")
        touch_id = add_touch(
            s, holder, 1, kind="manual", channel="phone", template=None,
            assignee="president@example.co.jp", note="社長から内定のお祝いの電話をする",
        ).id  # fmt: skip

    assert deliver_touch(context, touch_id, now=NOW) == "reminded"
    assert smtp_sink.count_for("president@example.co.jp") == 1
    assert smtp_sink.count_for("h@example.ac.jp") == 0
    mail = smtp_sink.messages[0].message()
    assert "山田 花子さんへのお電話" in str(mail["Subject"])
    body = mail.get_body(("plain",))
    assert body is not None and "/done/" in body.get_content()  # a signed link, not a CLI command
    assert touch_state(context, touch_id).status == "reminded"


def test_a_claim_abandoned_by_a_dead_worker_is_recovered_after_the_timeout(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path), claim_timeout=300)
    with context.session() as s:
        touch = add_touch(s, add_holder(s, "NG-16", email="z@example.ac.jp"), 1)
        touch.status, touch.claimed_at, touch.claimed_by = "sending", NOW, "dead"
        touch_id = touch.id

    assert run_due(context, NOW + timedelta(seconds=299)).recovered == 0
    summary = run_due(context, NOW + timedelta(seconds=301))
    assert (summary.recovered, summary.outcomes["sent"]) == (1, 1)
    assert smtp_sink.count_for("z@example.ac.jp") == 1
    assert touch_state(context, touch_id).status == "sent"


def test_embedded_channels_fall_back_to_the_outbox(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    channels = build_channels(context)
    assert {type(c).__name__ for c in channels.values()} == {"OutboxChannel"}
    with context.session() as s:
        holder = add_holder(s, "NG-17", email="o@example.ac.jp", line="U17")
        add_touch(s, holder, 1)
        add_touch(s, holder, 2, channel="line")

    assert run_due(context, NOW).outcomes == {"sent": 2}
    files = sorted(p.suffix for p in (tmp_path / "outbox").iterdir())
    assert files == [".eml", ".json"]


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after() -> None:
    delays = [backoff_delay(n, base=10, cap=1000) for n in (1, 2, 3, 4)]
    for n, delay in enumerate(delays, start=1):
        assert 10 * 2 ** (n - 1) * 0.5 <= delay <= 10 * 2 ** (n - 1)
    assert backoff_delay(20, base=10, cap=100) <= 100
    assert backoff_delay(1, base=1, cap=10, retry_after=42) == 42


def test_the_cap_frees_when_the_oldest_counted_touch_leaves_the_window() -> None:
    week = Interval(7, "d")
    times = [NOW - timedelta(days=d) for d in (6, 3, 1)]
    assert cap_frees_at(times, 3, week, NOW) == times[0] + timedelta(days=7, seconds=1)
    assert cap_frees_at(times, 4, week, NOW) is None
    assert cap_frees_at([*times, NOW - timedelta(days=8)], 3, week, NOW) == times[0] + timedelta(
        days=7, seconds=1
    )


def test_the_enqueue_memo_publishes_an_id_again_only_after_its_ttl() -> None:
    memo = EnqueueMemo(ttl=0.05)
    memo.mark([1, 2])
    assert memo.fresh([1, 2, 3]) == [3]
    import time

    time.sleep(0.06)
    assert memo.fresh([1, 2, 3]) == [1, 2, 3]


def test_a_row_that_crashes_preparation_is_postponed_not_retried_in_a_loop(
    wired: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-18", email="bug@example.ac.jp"), 1).id
    deliverer = deliverer_for(context)

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    wired.setattr(deliverer, "_prepare", broken)
    with pytest.raises(RuntimeError):
        deliver_touch(context, touch_id, now=NOW)
    touch = touch_state(context, touch_id)
    assert (touch.status, touch.attempts) == ("planned", 1)
    assert touch.due_at > NOW and "a bug" in (touch.last_error or "")
    assert [a.outcome for a in attempts_of(context, touch_id)] == ["transient"]


def test_a_survey_touch_in_chat_carries_answer_buttons_for_the_scale_questions(
    wired: pytest.MonkeyPatch, tmp_path: Path, slack_api: SlackApi, line_api: LineApi
) -> None:
    from followup.delivery.links import LinkSigner
    from followup.engagement.buttons import decode_answer

    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        holder = add_holder(s, "NG-3", slack="U777", line="Uxyz")
        slack_touch = add_touch(s, holder, 1, channel="slack", template="pulse_survey", kind="survey")
        line_touch = add_touch(s, holder, 2, channel="line", template="pulse_survey", kind="survey")
        slack_touch.survey_form = line_touch.survey_form = "pulse"
        slack_id, line_id = slack_touch.id, line_touch.id

    assert deliver_touch(context, slack_id, now=NOW) == "sent"
    assert deliver_touch(context, line_id, now=NOW) == "sent"

    signer = LinkSigner.from_settings(context.settings)
    values = [
        element["value"]
        for block in slack_api.records[0]["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if "value" in element
    ]
    decoded = [decode_answer(v) for v in values]
    assert {d[1] for d in decoded if d} >= {"motivation", "anxiety", "understanding"}
    assert all(signer.read_survey_token(d[0], 3600) == slack_id for d in decoded if d)
    quick = line_api.records[0]["messages"][-1]["quickReply"]["items"]
    assert len(quick) == 5 and quick[0]["action"]["type"] == "postback"


def test_a_retry_that_would_fall_after_the_send_window_waits_for_the_next_business_day(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    friday_evening = datetime(2026, 7, 17, 18, 59, 30, tzinfo=tokyo)  # Monday 7/20 is 海の日
    context = make_context(tmp_path, sqlite(tmp_path), retry_base=60.0, retry_cap=600.0)  # retry ≥ 30 s later
    with context.session() as s:
        touch = add_touch(s, add_holder(s, "NG-4", email="jiro@example.ac.jp"), 1, due_at=friday_evening)
        touch_id = touch.id
    smtp_sink.stop()

    assert deliver_touch(context, touch_id, now=friday_evening) == "transient: retry planned"
    retry_at = touch_state(context, touch_id).due_at.astimezone(tokyo)
    assert retry_at == datetime(2026, 7, 21, 10, 0, tzinfo=tokyo)  # not at 19:00+, nor on the weekend/holiday


def test_a_touch_found_due_at_night_waits_for_the_send_window_instead_of_going_out(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        due = datetime(2026, 7, 3, 10, 0, tzinfo=tokyo)  # Friday morning; the system was down until Saturday
        touch_id = add_touch(s, add_holder(s, "NG-5", email="saburo@example.ac.jp"), 1, due_at=due).id

    saturday_night = datetime(2026, 7, 4, 23, 30, tzinfo=tokyo)
    assert deliver_touch(context, touch_id, now=saturday_night) == "deferred: outside the send window"
    assert smtp_sink.count_for("saburo@example.ac.jp") == 0
    touch = touch_state(context, touch_id)
    assert touch.status == "planned" and touch.attempts == 0
    assert touch.due_at.astimezone(tokyo) == datetime(2026, 7, 6, 10, 0, tzinfo=tokyo)
    assert deliver_touch(context, touch_id, now=touch.due_at) == "sent"


def test_a_database_blip_while_recording_a_sent_message_is_retried_not_resent(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    # a failover cannot be staged on SQLite: the seam fails the first recording attempt like one would
    from sqlalchemy.exc import OperationalError

    from followup.delivery.deliver import Deliverer

    context = make_context(tmp_path, sqlite(tmp_path))
    with context.session() as s:
        touch_id = add_touch(s, add_holder(s, "NG-6", email="shiro@example.ac.jp"), 1).id
    # the seam: the recording of a sent result (``_record_sent``, the one-statement path)
    original, calls = Deliverer._record_sent, []

    def flaky(self: Deliverer, *args: object) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE touches", {}, Exception("server closed the connection"))
        return original(self, *args)  # type: ignore[arg-type]

    wired.setattr(Deliverer, "_record_sent", flaky)
    assert deliver_touch(context, touch_id, now=NOW) == "sent"
    assert len(calls) == 2 and smtp_sink.count_for("shiro@example.ac.jp") == 1
    assert touch_state(context, touch_id).status == "sent"
