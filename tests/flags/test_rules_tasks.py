"""task_overdue fires on the business day after the due date, not on the due day, and never once the task
is 提出済・確認済・対象外 — from the rule alone, and from the histories the flags store loads."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from followup.config import load_policy
from followup.db.models import OfferHolder
from followup.db.session import session_scope
from followup.durations import parse_anchor
from followup.flags.rules import ACTIONS, HolderHistory, TaskRecord, evaluate
from followup.flags.store import load_histories
from followup.labels import RULE_LABELS
from followup.tasks.store import set_status

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")


def tokyo(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def history(*tasks: TaskRecord) -> HolderHistory:
    return HolderHistory(
        holder_id=1,
        external_id="NG-1",
        name="山田 花子",
        status="accepted",
        offer_date=date(2026, 6, 1),
        start_date=date(2027, 4, 1),
        cadence="new_grad",
        reachable_channels=("email",),
        tasks=tasks,
    )


GUARANTEE = TaskRecord("guarantee", "身元保証書", date(2027, 2, 18), tokyo("2027-02-19T00:00"))


def overdue_at(h: HolderHistory, now: datetime) -> str | None:
    found = [d for d in evaluate(h, POLICY, now) if d.rule == "task_overdue"]
    return found[0].reason if found else None


def test_not_on_the_due_day_itself_but_from_the_next_business_day() -> None:
    h = history(GUARANTEE)
    assert overdue_at(h, tokyo("2027-02-18T23:59")) is None
    assert overdue_at(h, tokyo("2027-02-19T00:00")) == "「身元保証書」の期限(2/18)を過ぎても未提出です。"


@pytest.mark.parametrize("status", ["submitted", "confirmed", "exempt"])
def test_not_when_the_task_is_handed_in_or_exempt(status: str) -> None:
    done = TaskRecord("guarantee", "身元保証書", GUARANTEE.due, GUARANTEE.late_from, status)
    assert overdue_at(history(done), tokyo("2027-03-01T10:00")) is None


def test_one_flag_names_the_earliest_task_and_counts_the_others() -> None:
    health = TaskRecord("health_check", "健康診断書", date(2027, 3, 4), tokyo("2027-03-05T00:00"))
    reason = overdue_at(history(health, GUARANTEE), tokyo("2027-03-08T10:00"))
    assert reason == "「身元保証書」の期限(2/18)を過ぎても未提出です(ほか1件: 健康診断書)。"


def test_it_has_a_label_and_an_action() -> None:
    assert RULE_LABELS["task_overdue"] == "提出物の期限切れ"
    assert "提出方法" in ACTIONS["task_overdue"]


def test_the_store_counts_late_from_the_business_day_after_a_holiday(sqlite_url: str) -> None:
    # due 2/10 (水); 2/11 建国記念の日: late from 2/12 (金), not on 2/11
    task = POLICY.tasks["guarantee"].model_copy(update={"due": parse_anchor("2027-02-10")})
    policy = POLICY.model_copy(update={"tasks": {"guarantee": task}})
    with session_scope(sqlite_url) as session:
        for i in (1, 2):
            session.add(
                OfferHolder(
                    external_id=f"NG-{i}",
                    name=f"内定 {i}",
                    email=f"h{i}@example.ac.jp",
                    track="new_grad",
                    offer_date=date(2026, 6, 1),
                    start_date=date(2027, 4, 1),
                    status="accepted",
                )
            )
    with session_scope(sqlite_url) as session:
        second = session.query(OfferHolder).filter_by(external_id="NG-2").one()
        set_status(session, second.id, "guarantee", "submitted", at=tokyo("2027-02-09T12:00"), actor="hr")

    def flagged(now: datetime) -> list[str]:
        with session_scope(sqlite_url) as session:
            histories = load_histories(session, policy, now)
        return sorted(h.external_id for h in histories if overdue_at(h, now))

    assert flagged(tokyo("2027-02-11T15:00")) == []
    assert flagged(tokyo("2027-02-12T00:00")) == ["NG-1"]
