"""The data layer on SQLite and PostgreSQL: import, lifecycle history, unique touch keys, UTC times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from followup.db.models import HolderChange, OfferHolder, Touch
from followup.db.session import session_scope
from followup.holders.importer import (
    change_start_date,
    change_status,
    find_holder,
    import_holders,
    read_holders_csv,
)
from tests.cli import REPO

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=JST)


def test_import_is_an_upsert_and_history_is_recorded(any_db_url: str) -> None:
    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    with session_scope(any_db_url) as session:
        assert import_holders(session, rows, now=NOW).created == 30
    with session_scope(any_db_url) as session:
        summary = import_holders(session, rows, now=NOW)
        assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 30)
        holder = find_holder(session, "NG-2027-003")
        assert holder is not None and holder.status == "offered"
        change_status(session, holder, "accepted", at=NOW + timedelta(days=1))
        change_start_date(
            session, holder, date(2027, 4, 5), at=NOW + timedelta(days=2), note="卒業延期なし、調整"
        )
    with session_scope(any_db_url) as session:
        holder = find_holder(session, "NG-2027-003")
        assert holder is not None
        assert holder.accepted_date == date(2026, 6, 2)
        changes = session.scalars(
            select(HolderChange).where(HolderChange.holder_id == holder.id).order_by(HolderChange.at)
        ).all()
        assert [(c.field, c.old_value, c.new_value) for c in changes] == [
            ("created", None, "offered"),
            ("status", "offered", "accepted"),
            ("start_date", "2027-04-01", "2027-04-05"),
        ]
        assert changes[1].at == (NOW + timedelta(days=1)).astimezone(UTC)


def test_a_declined_holder_cannot_join(any_db_url: str) -> None:
    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    with session_scope(any_db_url) as session:
        import_holders(session, rows, now=NOW)
        holder = find_holder(session, "NG-2027-001")
        assert holder is not None
        change_status(session, holder, "declined", at=NOW, reason="他社に入社を決めたため")
        assert holder.decline_reason == "他社に入社を決めたため"
        with pytest.raises(ValueError, match="cannot change status from declined to joined"):
            change_status(session, holder, "joined", at=NOW)


def test_a_touch_key_is_unique(any_db_url: str) -> None:
    with session_scope(any_db_url) as session:
        holder = OfferHolder(
            external_id="X1",
            name="試験 太郎",
            email="x@example.jp",
            offer_date=date(2026, 4, 1),
            start_date=date(2027, 4, 1),
        )
        session.add(holder)
        session.flush()
        due = datetime(2026, 4, 8, 10, tzinfo=JST)
        session.add(
            Touch(
                key="X1:new_grad:initial:1",
                holder_id=holder.id,
                cadence="new_grad",
                phase="initial",
                seq=1,
                kind="message",
                channel="email",
                due_at=due,
            )
        )
    with pytest.raises(IntegrityError), session_scope(any_db_url) as session:
        holder_id = session.scalars(select(OfferHolder.id)).one()
        session.add(
            Touch(
                key="X1:new_grad:initial:1",
                holder_id=holder_id,
                cadence="new_grad",
                phase="initial",
                seq=1,
                kind="message",
                channel="email",
                due_at=due,
            )
        )
    with session_scope(any_db_url) as session:
        touch = session.scalars(select(Touch)).one()
        assert touch.due_at == datetime(2026, 4, 8, 1, tzinfo=UTC)
        assert touch.due_at.tzinfo is not None


def test_erasing_a_holder_removes_personal_data_but_keeps_counts(any_db_url: str) -> None:
    from followup.config import load_policy
    from followup.db.models import AuditEntry, SurveyResponse
    from followup.holders.erasure import erase_holder

    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    with session_scope(any_db_url) as session:
        import_holders(session, rows, now=NOW)
        holder = find_holder(session, "NG-2027-001")
        assert holder is not None
        touch = Touch(
            key="NG-2027-001:new_grad:initial:0",
            holder_id=holder.id,
            cadence="new_grad",
            phase="initial",
            seq=0,
            kind="survey",
            channel="email",
            due_at=NOW,
            status="sent",
            note="山田さんへ電話",
        )
        session.add(touch)
        session.flush()
        session.add(
            SurveyResponse(
                touch_id=touch.id,
                holder_id=holder.id,
                form="pulse",
                score=3.0,
                answers={
                    "motivation": 4,
                    "situation": "他社も検討している",
                    "comment": "山田です。給与が気になります",
                },
            )
        )
        holder_id = holder.id
    with session_scope(any_db_url) as session:
        holder = session.get(OfferHolder, holder_id)
        assert holder is not None
        erase_holder(session, holder, policy, now=NOW, actor="test")
    with session_scope(any_db_url) as session:
        holder = session.get(OfferHolder, holder_id)
        assert holder is not None
        assert (holder.name, holder.email, holder.line_user_id) == ("(削除済み)", None, None)
        assert holder.external_id == f"erased-{holder_id}" and holder.erased_at is not None
        response = session.scalars(select(SurveyResponse)).one()
        assert response.answers == {"motivation": 4, "situation": "他社も検討している"}
        touch = session.scalars(select(Touch)).one()
        assert touch.note is None and touch.key == f"erased-{holder_id}:new_grad:initial:0"
        assert session.scalar(select(OfferHolder.id).where(OfferHolder.external_id == "NG-2027-001")) is None
        assert session.scalars(select(AuditEntry.action)).all()[-1] == "erase_holder"
