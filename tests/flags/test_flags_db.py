"""Flags from database rows: bulk loading, and first seen / last seen / resolved across evaluations."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from followup.db.models import Flag, OfferHolder
from followup.flags.store import evaluate_and_persist, load_histories
from tests.cli import run_followup
from tests.conftest import make_context
from tests.rules_fixtures import EXPECTED_FLAGS, NOW, add_touch, seed_cohort


def seeded(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    context = make_context(db_url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    return context


def test_each_holder_raises_the_flags_its_history_calls_for(any_db_url: str, tmp_path: Path) -> None:
    context = seeded(any_db_url, tmp_path)
    decisions, changes = evaluate_and_persist(context, NOW)
    assert {(d.external_id, d.rule) for d in decisions} == EXPECTED_FLAGS
    assert len(changes.new) == len(EXPECTED_FLAGS) and not changes.continuing and not changes.resolved
    with context.session() as session:
        rows = session.scalars(select(Flag)).all()
    assert all(r.first_seen == NOW and r.last_seen == NOW and r.resolved_at is None for r in rows)
    declining = next(d for d in decisions if d.rule == "declining_signal")
    assert "「他社も検討している」" in declining.reason


def test_histories_are_loaded_in_bulk_with_phase_and_channels(any_db_url: str, tmp_path: Path) -> None:
    context = seeded(any_db_url, tmp_path)
    with context.session() as session:
        histories = {h.external_id: h for h in load_histories(session, context.policy, NOW)}
    assert "N-008" not in histories  # declined: not followed any more
    assert histories["N-001"].phase == "initial" and histories["N-002"].phase == "initial"
    assert histories["N-005"].phase == "steady"
    assert histories["N-007"].reachable_channels == ()
    # only contact counts: N-002's failed send and N-004's suppressed attempt are not delivered touches
    assert [t.at for t in histories["N-002"].delivered] == [NOW - timedelta(days=20)]
    assert [t.channel for t in histories["N-004"].delivered] == ["email", "line", "slack", "email"]
    # only what a rule reads: N-003's email 20 days ago is neither the latest touch, nor inside the
    # over-contact window, nor after the last engagement (the call)
    assert [t.channel for t in histories["N-003"].delivered] == ["phone"]
    assert all(not h.undelivered for h in histories.values())


def test_a_flag_that_fires_again_continues_and_one_that_stops_is_resolved(
    any_db_url: str, tmp_path: Path
) -> None:
    context = seeded(any_db_url, tmp_path)
    evaluate_and_persist(context, NOW)
    with context.session() as session:  # the mentor reaches N-002 by email the next morning
        holder = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "N-002")).one()
        add_touch(session, holder, NOW + timedelta(hours=2))
    later = NOW + timedelta(hours=3)
    decisions, changes = evaluate_and_persist(context, later)

    assert ("N-002", "neglected") not in {(d.external_id, d.rule) for d in decisions}
    assert [(r.holder_id, r.rule) for r in changes.resolved] == [(holder.id, "neglected")]
    assert not changes.new
    assert len(changes.continuing) == len(EXPECTED_FLAGS) - 1
    with context.session() as session:
        rows = {(r.holder_id, r.rule): r for r in session.scalars(select(Flag))}
    resolved = rows[(holder.id, "neglected")]
    assert resolved.resolved_at == later and resolved.last_seen == NOW
    continuing = next(r for r in rows.values() if r.rule == "unreachable")
    assert continuing.first_seen == NOW and continuing.last_seen == later and continuing.resolved_at is None


def test_a_resolved_flag_that_fires_again_is_a_new_flag(any_db_url: str, tmp_path: Path) -> None:
    context = seeded(any_db_url, tmp_path)
    evaluate_and_persist(context, NOW)
    with context.session() as session:
        holder = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "N-002")).one()
        add_touch(session, holder, NOW + timedelta(hours=1))
    evaluate_and_persist(context, NOW + timedelta(hours=2))
    _, changes = evaluate_and_persist(context, NOW + timedelta(days=60))  # silence again, much later
    assert (holder.id, "neglected") in {(r.holder_id, r.rule) for r in changes.new}
    with context.session() as session:
        rows = session.scalars(
            select(Flag).where(Flag.holder_id == holder.id, Flag.rule == "neglected")
        ).all()
    assert len(rows) == 2 and sum(r.resolved_at is None for r in rows) == 1


def test_the_flags_command_lists_spec_records_as_json(sqlite_url: str, tmp_path: Path) -> None:
    seeded(sqlite_url, tmp_path)
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    result = run_followup("flags", "--now", NOW.isoformat(), "--json", env=env)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert {(r["external_id"], r["rule"]) for r in records} == EXPECTED_FLAGS
    assert {"external_id", "rule", "severity", "reason", "since", "action", "risk"} <= set(records[0])
    assert records[0]["external_id"] == "N-005"  # low pulse + drop: the highest risk comes first
    table = run_followup("flags", "--now", NOW.isoformat(), env=env)
    assert table.returncode == 0 and "N-002" in table.stdout and "継続 6件" in table.stdout
    # holders show --json (and the API) give each flag the same "since" as the flags command
    shown = json.loads(run_followup("holders", "show", "N-002", "--json", env=env).stdout)
    by_rule = {r["rule"]: r["since"] for r in records if r["external_id"] == "N-002"}
    assert by_rule and {f["rule"]: f["since"] for f in shown["flags"]} == by_rule


def test_a_bad_now_exits_with_status_two(sqlite_url: str, tmp_path: Path) -> None:
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    result = run_followup("flags", "--now", "next monday", env=env)
    assert result.returncode == 2
    assert "--now" in result.stderr


def test_a_holder_reachable_only_on_a_channel_the_phase_does_not_use_is_unreachable(
    sqlite_url: str, tmp_path: Path
) -> None:
    from tests.rules_fixtures import add_holder

    repo = Path(__file__).resolve().parents[2]
    text = (repo / "config" / "followup.yaml").read_text(encoding="utf-8")
    email_only = text.replace("        channels: [line, email, slack]", "        channels: [email]", 1)
    assert email_only != text
    config = tmp_path / "email-only.yaml"
    config.write_text(
        email_only.replace("templates_dir: ../templates", f"templates_dir: {repo / 'templates'}")
    )
    context = make_context(sqlite_url, tmp_path, config=config)
    with context.session() as session:
        add_holder(
            session,
            "S-001",
            "スラック 太郎",
            email=None,
            slack_user_id="U0SLACK0001",
            offer_date=date(2026, 5, 1),
        )
    decisions, _ = evaluate_and_persist(context, NOW)  # NOW is in the initial phase (email only)
    assert ("S-001", "unreachable") in {(d.external_id, d.rule) for d in decisions}
