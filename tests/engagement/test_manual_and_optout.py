"""The president's reminder and its 「実施済みにする」 page; essential notices after an opt-out;
messages that need no reply are not counted toward 無反応."""

from __future__ import annotations

import email
import re
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

from followup.db.models import ChannelOptOut, Touch
from followup.delivery.deliver import deliver_touch
from followup.flags.rules import HolderHistory, RuleEngine, TouchRecord
from followup.flags.store import evaluate_now, no_reply_templates
from tests import web_fixtures
from tests.web_fixtures import WebEnv

web = web_fixtures.web

NOW = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)  # Tue 10:00 in Tokyo, the day after the offer


def outbox_mails(web: WebEnv) -> list[EmailMessage]:
    folder = Path(web.context.settings.var_dir) / "outbox"
    return [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


def president_call(web: WebEnv, holder_id: int) -> int:
    with web.context.session() as session:
        touch = Touch(
            key="NG2027-0001:new_grad:initial:once:president_call",
            holder_id=holder_id,
            cadence="new_grad",
            phase="initial",
            seq=0,
            kind="manual",
            channel="phone",
            assignee="president@example.co.jp",
            note="社長から内定のお祝いの電話をする",
            due_at=NOW - timedelta(minutes=5),
            status="planned",
        )
        session.add(touch)
        session.flush()
        return touch.id


def test_the_presidents_reminder_addresses_him_by_name_with_phone_memo_and_done_link(web: WebEnv) -> None:
    holder_id = web.holder(phone="090-1234-5678")
    touch_id = president_call(web, holder_id)

    assert deliver_touch(web.context, touch_id, now=NOW) == "reminded"

    [mail] = outbox_mails(web)
    body = mail.get_content().replace("\r\n", "\n")
    assert str(mail["To"]) == "president@example.co.jp"
    assert "山田 花子さんへのお電話のお願い" in str(mail["Subject"])
    assert body.startswith("佐藤社長\n") and "ご担当者様" not in body
    assert "090-1234-5678" in body
    assert "辞退が最も起きやすい時期" in body  # why now (config: why)
    assert "内定日:6/1(月)(1日前)" in body and "内定(承諾前)" in body
    assert "followup touch log" not in body  # no CLI for an executive
    assert re.search(r"http://testserver/done/\S+", body)


def test_the_done_link_records_the_call_once_with_a_note_and_get_records_nothing(web: WebEnv) -> None:
    holder_id = web.holder()
    touch_id = president_call(web, holder_id)
    assert deliver_touch(web.context, touch_id, now=NOW) == "reminded"
    [mail] = outbox_mails(web)
    body = mail.get_content()
    assert "電話番号は未登録です" in body
    path = re.search(r"http://testserver(/done/\S+)", body).group(1)  # type: ignore[union-attr]

    page = web.client.get(path)
    assert (
        page.status_code == 200 and "実施済みにする" in page.text and "山田 花子さんへのお電話" in page.text
    )
    with web.context.session() as session:
        assert session.get(Touch, touch_id).status == "reminded"  # type: ignore[union-attr]

    done = web.client.post(path, data={"note": "入社を楽しみにしているとのこと"})
    again = web.client.post(path, data={"note": "二度目"})

    assert "記録しました" in done.text and "記録済みです" in again.text
    with web.context.session() as session:
        touch = session.get(Touch, touch_id)
        assert touch is not None and touch.status == "done" and touch.sent_at is not None
        assert (
            touch.note is not None and "入社を楽しみにしている" in touch.note and "二度目" not in touch.note
        )
    assert web.client.get(path.replace("/done/", "/done/x")).status_code == 403


def test_an_essential_notice_still_goes_out_after_a_follow_up_opt_out(web: WebEnv) -> None:
    holder_id = web.holder()
    with web.context.session() as session:
        session.add(ChannelOptOut(holder_id=holder_id, channel="email", at=NOW, source="web"))
        for seq, template in ((1, "checkin"), (2, "first_day_schedule")):
            session.add(
                Touch(
                    key=f"NG2027-0001:new_grad:pre_start:{seq}",
                    holder_id=holder_id,
                    cadence="new_grad",
                    phase="pre_start",
                    seq=seq,
                    kind="message",
                    channel="email",
                    template=template,
                    due_at=NOW - timedelta(minutes=5),
                    status="planned",
                )
            )
    with web.context.session() as session:
        ids = {t.template: t.id for t in session.query(Touch).all()}

    assert deliver_touch(web.context, ids["checkin"], now=NOW) == "failed: unreachable"
    assert deliver_touch(web.context, ids["first_day_schedule"], now=NOW) == "sent"
    [mail] = outbox_mails(web)
    assert "ご入社初日" in str(mail["Subject"])
    assert mail["List-Unsubscribe"] is None  # an essential notice offers no opt-out it would not honour
    assert "配信を停止されている場合もお送りしています" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_the_opt_out_page_says_essential_notices_continue_without_apologising(web: WebEnv) -> None:
    holder_id = web.holder()
    token = web.signer.opt_out_token(holder_id, "email")
    confirm = web.client.get(f"/opt-out/{token}")
    done = web.client.post(f"/opt-out/{token}")
    for page in (confirm, done):
        assert "入社手続きに必要なご連絡" in page.text
        assert "ご不便をおかけしました" not in page.text
        assert "saiyo@example.co.jp" in page.text  # whom to ask


def test_touches_that_need_no_reply_do_not_count_toward_unresponsive(web: WebEnv) -> None:
    policy = web.context.policy
    engine = RuleEngine(policy)
    base = datetime(2026, 6, 5, 1, 0, tzinfo=UTC)
    quiet = [
        TouchRecord(base + timedelta(days=7 * i), "email", "message", expects_reply=False) for i in range(4)
    ]
    asking = [TouchRecord(base + timedelta(days=7 * i), "email", "message") for i in range(4)]
    now = base + timedelta(days=30)

    def rules(touches: list[TouchRecord]) -> set[str]:
        history = HolderHistory(
            1, "NG-1", "山田 花子", "offered", date(2026, 6, 1), date(2027, 4, 1), delivered=tuple(touches)
        )
        return {f.rule for f in engine.evaluate(history, now)}

    assert "unresponsive" in rules(asking)
    assert "unresponsive" not in rules(quiet)
    assert {"checkin", "monthly_update", "first_day_schedule"} <= no_reply_templates(web.context)
    assert "pulse_survey" not in no_reply_templates(web.context)

    # the same through the database: three sent checkins (「ご返信は不要です」) raise no unresponsive flag
    holder_id = web.holder()
    with web.context.session() as session:
        for i in range(4):
            at = base + timedelta(days=7 * i)
            session.add(
                Touch(
                    key=f"q:{i}",
                    holder_id=holder_id,
                    cadence="new_grad",
                    phase="initial",
                    seq=i + 1,
                    kind="message",
                    channel="email",
                    template="checkin",
                    due_at=at,
                    sent_at=at,
                    status="sent",
                )
            )
    with web.context.session() as session:
        flagged = {d.rule for d in evaluate_now(session, policy, now, no_reply_templates(web.context))}
        counted = {d.rule for d in evaluate_now(session, policy, now)}
    assert "unresponsive" not in flagged and "unresponsive" in counted
