# ruff: noqa: F811  (pytest fixtures imported by name are redefined as parameters)
"""Batched delivery through one reused SMTP connection, exactly once, against a real SMTP sink on
127.0.0.1 that drops the line mid-batch: the embedded loop claims touches in small batches, sends them
on one session, and must still deliver every touch once, count the in-doubt one and keep every attempt."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from followup.channels.base import OutboundMessage
from followup.channels.email import MAIL_POLICY, build_email, email_bytes, message_id_for
from followup.config.context import AppContext
from followup.db.models import ChannelOptOut, DeliveryAttempt, Touch
from followup.delivery.deliver import CLAIM_BATCH, claim_batch, run_due
from tests.delivery_fixtures import CHANNEL_ENV, NOW, add_holder, add_touch, make_context, touch_state
from tests.services import PostgresServer
from tests.standins.fixtures import smtp_sink  # noqa: F401 (fixture)
from tests.standins.smtp_sink import SmtpSink

SENDER = "saiyo@example.co.jp"  # channels.email.from in config/followup.yaml
BATCH_OF = 25  # three claim batches (10, 10, 5) in one pass


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch, smtp_sink: SmtpSink) -> pytest.MonkeyPatch:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOLLOWUP_BROKER_URL", raising=False)
    monkeypatch.setenv("SMTP_URL", smtp_sink.url)
    return monkeypatch


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends: the claim (SKIP LOCKED on PostgreSQL) and the one-statement record differ."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"batch_{abs(hash(request.node.name)) % 10**8}")


def email_touches(context: AppContext, n: int) -> list[int]:
    with context.session() as s:
        return [
            add_touch(s, add_holder(s, f"B-{i:03d}", email=f"b{i:03d}@example.ac.jp"), 1).id for i in range(n)
        ]


def arrivals(sink: SmtpSink, context: AppContext, ids: list[int]) -> dict[int, int]:
    """How many copies of each touch's message (by its Message-ID) reached the sink."""
    seen = Counter(str(m.message()["Message-ID"]) for m in sink.messages)
    return {i: seen[message_id_for(touch_state(context, i).key, SENDER)] for i in ids}


def outcomes(context: AppContext, ids: list[int]) -> dict[int, list[str]]:
    with context.session() as s:
        rows = s.execute(
            select(DeliveryAttempt.touch_id, DeliveryAttempt.outcome)
            .where(DeliveryAttempt.touch_id.in_(ids))
            .order_by(DeliveryAttempt.id)
        )
        found: dict[int, list[str]] = {i: [] for i in ids}
        for touch_id, outcome in rows:
            found[touch_id].append(outcome)
        return found


def test_a_batch_goes_out_on_one_connection(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Given 25 due touches (three claim batches), when one pass runs, then all 25 arrive once, each has
    one ``sent`` attempt, and the sink saw one SMTP session, not one per message or per batch."""
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    ids = email_touches(context, BATCH_OF)

    summary = run_due(context, NOW)

    assert summary.count("sent") == BATCH_OF
    assert set(arrivals(smtp_sink, context, ids).values()) == {1}
    assert all(o == ["sent"] for o in outcomes(context, ids).values())
    assert smtp_sink.sessions == 1


def test_the_sink_dropping_the_line_during_data_mid_batch_leaves_one_in_doubt_and_the_rest_once(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink, db_url: str
) -> None:
    """Given a relay that queues the 8th message of the batch and drops the line before its 250, when
    the pass runs, then the other 24 arrive once on a reopened connection (2 sessions), the 8th is
    counted in doubt (attempt ``in_doubt``, retry planned), and the next pass resends it once, with the
    same Message-ID, counted: two copies of that one message, one of every other, every attempt kept."""
    context = make_context(tmp_path, db_url)
    ids = email_touches(context, BATCH_OF)
    smtp_sink.drop_at = {8}

    first = run_due(context, NOW)

    assert (first.count("sent"), first.count("transient")) == (BATCH_OF - 1, 1)
    assert smtp_sink.sessions == 2  # the dropped one, then one reopened session for the rest
    doubtful = ids[7]
    copies = arrivals(smtp_sink, context, ids)
    assert all(copies[i] == 1 for i in ids)  # the 8th was queued by the relay too
    assert outcomes(context, ids)[doubtful] == ["in_doubt"]
    assert touch_state(context, doubtful).status == "planned"

    second = run_due(context, NOW + timedelta(hours=2))

    assert second.count("sent") == 1
    copies = arrivals(smtp_sink, context, ids)
    assert copies[doubtful] == 2 and all(copies[i] == 1 for i in ids if i != doubtful)
    touch = touch_state(context, doubtful)
    assert (touch.status, touch.in_doubt_resends) == ("sent", 1)
    found = outcomes(context, ids)
    assert found[doubtful] == ["in_doubt", "sent"]
    assert all(found[i] == ["sent"] for i in ids if i != doubtful)


def test_a_relay_ending_the_session_every_ten_messages_loses_and_repeats_nothing(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    ids = email_touches(context, BATCH_OF)
    smtp_sink.close_sessions_after = 7  # not aligned with the claim batches

    assert run_due(context, NOW).count("sent") == BATCH_OF

    assert set(arrivals(smtp_sink, context, ids).values()) == {1}
    assert all(o == ["sent"] for o in outcomes(context, ids).values())
    assert smtp_sink.sessions == 4  # 7 + 7 + 7 + 4


def test_an_opt_out_and_the_contact_cap_still_hold_inside_a_batch(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """The batch loads opt-outs and recent sends once for all its holders: an opted-out holder is not
    mailed, and two due touches of one holder in the same batch still count against each other."""
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    rule = context.policy.rules.over_contacted
    assert rule.enforce
    with context.session() as s:
        opted = add_holder(s, "B-OPT", email="opt@example.ac.jp")
        s.add(ChannelOptOut(holder_id=opted.id, channel="email"))
        add_touch(s, opted, 1)
        busy = add_holder(s, "B-BUSY", email="busy@example.ac.jp")
        busy_ids = [add_touch(s, busy, n).id for n in range(1, rule.max_touches + 2)]

    summary = run_due(context, NOW)

    assert smtp_sink.count_for("opt@example.ac.jp") == 0
    assert summary.count("failed") == 1  # unreachable: its only channel is opted out
    assert smtp_sink.count_for("busy@example.ac.jp") == rule.max_touches
    assert summary.count("suppressed") == 1
    assert [touch_state(context, i).status for i in busy_ids].count("sent") == rule.max_touches


def test_a_batch_claim_takes_only_what_is_still_planned_and_due_on_postgresql(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """One statement (``FOR UPDATE SKIP LOCKED``): a second claimer of the same ids gets none of them."""
    context = make_context(tmp_path, postgres_server.create_database("batch_claim"))
    with context.session() as s:
        holder = add_holder(s, "B-PG", email="pg@example.ac.jp")
        due = [add_touch(s, holder, n).id for n in range(1, 4)]
        later = add_touch(s, holder, 9, due_at=NOW + timedelta(days=1)).id

    with context.session() as s:
        assert claim_batch(s, [*due, later], NOW, "first#1") == due
    with context.session() as s:
        assert claim_batch(s, [*due, later], NOW, "second#1") == []
        claimed = s.scalars(select(Touch.claimed_by).where(Touch.id.in_(due))).all()
    assert set(claimed) == {"first#1"}
    assert touch_state(context, later).status == "planned"
    assert CLAIM_BATCH <= 50  # small batches: a crash leaves few touches in doubt


@pytest.mark.parametrize("html", ["<p>山田 花子 様</p><p>内定おめでとうございます。</p>", None])
@pytest.mark.parametrize("sender_name", ["株式会社サンプル 人事部", "", "HR Team"])
def test_the_bytes_written_directly_read_as_the_email_package_s_message(
    html: str | None, sender_name: str
) -> None:
    """A mail client reads the same From, Subject (decoded Japanese), List-Unsubscribe and parts from
    ``email_bytes`` as from the email package's message (which the channel used before)."""
    message = OutboundMessage(
        "H-1:new_grad:initial:1",
        "email",
        "hanako@example.ac.jp",
        "【株式会社サンプル】その後お変わりございませんか",
        "山田 花子 様\n\nいつもお世話になっております。\n" + "長い行です。" * 30 + "\n",
        html,
        unsubscribe_url="https://followup.example.com/u/" + "a" * 150 + "?c=email",
    )
    date = "Wed, 01 Jul 2026 10:00:00 +0900"
    ours = message_from_bytes(email_bytes(message, SENDER, sender_name, date), policy=policy.default)
    theirs_msg = build_email(message, SENDER, sender_name)
    theirs_msg["Date"] = date
    theirs = message_from_bytes(theirs_msg.as_bytes(policy=MAIL_POLICY), policy=policy.default)

    assert str(ours["Subject"]) == message.subject
    for header in ("From", "To", "Subject", "Message-ID", "MIME-Version", "Date"):
        assert str(ours[header]) == str(theirs[header]), header
    assert ours["List-Unsubscribe"] == theirs["List-Unsubscribe"] == f"<{message.unsubscribe_url}>"
    assert ours["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ours.get_content_type() == theirs.get_content_type()
    for subtype in ("plain", "html"):
        mine: Any = ours.get_body((subtype,))
        other: Any = theirs.get_body((subtype,))
        assert (mine is None) == (other is None)
        if mine is not None:
            assert mine.get_content() == other.get_content()
    assert not any(part.defects for part in ours.walk())
    assert all(len(line) <= 998 for line in email_bytes(message, SENDER, sender_name, date).split(b"\r\n"))


class _Killed(BaseException):
    """The process dying in the middle of a send (not an error the delivery code may catch)."""


def test_a_crash_mid_batch_leaves_only_the_touch_in_flight_in_doubt(
    wired: pytest.MonkeyPatch, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Given a batch whose process dies during its 4th send, when the next pass recovers the claims, then
    only that 4th touch is in doubt (one counted resend); the six never reached are plainly planned
    again, not in doubt, so a second crash cannot use up their one in-doubt resend. All ten arrive once."""
    from followup.channels.email import EmailChannel

    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    ids = email_touches(context, CLAIM_BATCH)
    original, calls = EmailChannel.send, []

    def dying(self: EmailChannel, message: OutboundMessage) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise _Killed
        return original(self, message)

    wired.setattr(EmailChannel, "send", dying)
    with pytest.raises(_Killed):
        run_due(context, NOW)
    started = [touch_state(context, i).send_started_at is not None for i in ids]
    assert started == [False, False, False, True] + [False] * (CLAIM_BATCH - 4)
    wired.setattr(EmailChannel, "send", original)

    run_due(context, NOW + timedelta(seconds=10))  # after the claim timeout (3 s here)

    assert set(arrivals(smtp_sink, context, ids).values()) == {1}
    found = outcomes(context, ids)
    assert found[ids[3]] == ["in_doubt", "sent"]
    assert all(found[i] == ["sent"] for i in ids if i != ids[3])
    assert [touch_state(context, i).in_doubt_resends for i in ids].count(1) == 1
