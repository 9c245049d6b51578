"""manual_overdue: a reminded call not logged after three business days gets the assignee exactly one
escalation mail (however often the tick runs), raises a flag, and logging the call resolves it."""

from __future__ import annotations

import email
import re
import threading
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from followup.db.models import Flag, OfferHolder, Touch
from followup.delivery.deliver import deliver_touch, run_due
from followup.flags.store import evaluate_and_persist
from followup.planning.store import plan_escalations, plan_tick
from tests import web_fixtures
from tests.cli import run_followup
from tests.conftest import make_context
from tests.web_fixtures import WebEnv

web = web_fixtures.web

REMINDED = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)  # Tue 6/2 10:00 in Tokyo, the day after the offer
DEADLINE = datetime(2026, 6, 5, 1, 0, tzinfo=UTC)  # Fri 6/5 10:00: three business days later
PRESIDENT = "president@example.co.jp"


def mails_to(web: WebEnv, address: str) -> list[EmailMessage]:
    folder = Path(web.context.settings.var_dir) / "outbox"
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]
    return [m for m in mails if str(m["To"]) == address]


def reminded_call(web: WebEnv, holder_id: int) -> int:
    """The president's call, due and reminded at REMINDED (the reminder mail is in the outbox)."""
    with web.context.session() as session:
        touch = Touch(
            key="NG2027-0001:new_grad:initial:once:president_call",
            holder_id=holder_id,
            cadence="new_grad",
            phase="initial",
            seq=-1,
            kind="manual",
            channel="phone",
            assignee=PRESIDENT,
            note="社長から内定のお祝いの電話をする",
            due_at=REMINDED - timedelta(minutes=5),
            status="planned",
        )
        session.add(touch)
        session.flush()
        touch_id = touch.id
    assert deliver_touch(web.context, touch_id, now=REMINDED) == "reminded"
    return touch_id


def tick(web: WebEnv, now: datetime) -> None:
    """What ``followup run --once`` does: plan (escalations included), then deliver what is due."""
    plan_tick(web.context, now)
    run_due(web.context, now)


def open_flags(web: WebEnv) -> list[Flag]:
    with web.context.session() as session:
        return list(
            session.scalars(select(Flag).where(Flag.rule == "manual_overdue", Flag.resolved_at.is_(None)))
        )


def test_the_assignee_gets_one_escalation_after_three_business_days_even_when_the_tick_runs_twice(
    web: WebEnv,
) -> None:
    holder_id = web.holder(phone="090-1234-5678")
    call_id = reminded_call(web, holder_id)
    assert len(mails_to(web, PRESIDENT)) == 1  # the reminder

    tick(web, DEADLINE)  # exactly at the limit: not yet
    assert len(mails_to(web, PRESIDENT)) == 1
    with web.context.session() as session:
        assert plan_escalations(session, web.context.policy, DEADLINE) == 0

    later = DEADLINE + timedelta(minutes=30)
    tick(web, later)
    tick(web, later + timedelta(minutes=1))
    tick(web, later + timedelta(days=1))

    reminder, escalation = mails_to(web, PRESIDENT)
    assert "再度のお願い" in str(escalation["Subject"]) and "山田 花子さん" in str(escalation["Subject"])
    body = escalation.get_content().replace("\r\n", "\n")
    assert body.startswith("佐藤社長\n")
    assert "6/2(火)にお願いした、内定者の山田 花子さんへのお電話" in body
    assert "社長から内定のお祝いの電話をする" in body and "090-1234-5678" in body
    # the same 実施済み link as the reminder's: signed for the call itself (signed at another second)
    tokens = [re.findall(r"http://testserver/done/(\S+)", m.get_content()) for m in (reminder, escalation)]
    assert [[web.signer.read_manual_token(t) for t in found] for found in tokens] == [[call_id], [call_id]]
    with web.context.session() as session:
        [escalated] = session.scalars(select(Touch).where(Touch.kind == "escalation"))
        assert escalated.key == f"escalation:{call_id}" and escalated.status == "reminded"
        assert escalated.attempts == 1

    evaluate_and_persist(web.context, later)
    [flag] = open_flags(web)
    assert flag.since is not None and abs(flag.since - DEADLINE) < timedelta(seconds=1)  # the reminder's time
    assert "佐藤社長に6/2にお願いした「社長から内定のお祝いの電話をする」" in flag.reason


def test_the_done_link_resolves_the_flag_and_nothing_more_is_sent(web: WebEnv) -> None:
    holder_id = web.holder()
    reminded_call(web, holder_id)
    later = DEADLINE + timedelta(hours=1)
    tick(web, later)
    evaluate_and_persist(web.context, later)
    assert len(open_flags(web)) == 1
    [_, escalation] = mails_to(web, PRESIDENT)
    path = re.search(r"http://testserver(/done/\S+)", escalation.get_content()).group(1)  # type: ignore[union-attr]

    assert "記録しました" in web.client.post(path, data={"note": "お話しできました"}).text
    evaluate_and_persist(web.context, later + timedelta(hours=1))
    tick(web, later + timedelta(days=3))

    assert open_flags(web) == []
    assert len(mails_to(web, PRESIDENT)) == 2


def test_a_call_logged_before_the_escalation_goes_cancels_it(web: WebEnv, tmp_path: Path) -> None:
    holder_id = web.holder()
    call_id = reminded_call(web, holder_id)
    evening = DEADLINE + timedelta(hours=10)  # Fri 20:00: planned now, but outside the send window
    tick(web, evening)
    evaluate_and_persist(web.context, evening)
    assert len(open_flags(web)) == 1 and len(mails_to(web, PRESIDENT)) == 1

    env = {
        "FOLLOWUP_DATABASE_URL": web.context.settings.database_url,
        "FOLLOWUP_VAR_DIR": str(web.context.settings.var_dir),
    }
    logged = run_followup("touch", "log", "NG2027-0001", "--channel", "phone", env=env)
    assert logged.returncode == 0, logged.stderr
    monday = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)
    tick(web, monday)
    evaluate_and_persist(web.context, monday)

    assert len(mails_to(web, PRESIDENT)) == 1  # only the reminder
    assert open_flags(web) == []
    with web.context.session() as session:
        escalated = session.scalar(select(Touch).where(Touch.key == f"escalation:{call_id}"))
        assert escalated is not None and escalated.status == "cancelled"
        assert escalated.cancel_reason == "実施済みのため再依頼は不要"


def test_two_ticks_at_once_plan_and_send_one_escalation(any_db_url: str, tmp_path: Path) -> None:
    """Two schedulers (threads) escalating the same overdue call at the same moment: one touch, one mail."""
    context = make_context(any_db_url, tmp_path / "var")
    with context.session() as session:
        holder = OfferHolder(
            external_id="NG2027-0001",
            name="山田 花子",
            email="ng1@example.ac.jp",
            track="new_grad",
            offer_date=date(2026, 6, 1),
            start_date=date(2027, 4, 1),
            status="offered",
        )
        session.add(holder)
        session.flush()
        session.add(
            Touch(
                key="NG2027-0001:new_grad:initial:once:president_call",
                holder_id=holder.id,
                cadence="new_grad",
                phase="initial",
                seq=-1,
                kind="manual",
                channel="phone",
                assignee=PRESIDENT,
                note="社長から内定のお祝いの電話をする",
                due_at=REMINDED,
                sent_at=REMINDED,
                status="reminded",
            )
        )
    later = DEADLINE + timedelta(hours=1)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            with context.session() as session:
                plan_escalations(session, context.policy, later)
            run_due(context, later)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with context.session() as session:
        escalations = list(session.scalars(select(Touch).where(Touch.kind == "escalation")))
    assert [(t.status, t.attempts) for t in escalations] == [("reminded", 1)]
    outbox = Path(context.settings.var_dir) / "outbox"
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in outbox.glob("*.eml")
    ]
    assert ["再度のお願い" in str(m["Subject"]) for m in mails] == [True]  # type: ignore[index]
