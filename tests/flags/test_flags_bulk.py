"""The set-based flags path (issue 18) against the straightforward one, on SQLite and PostgreSQL.

* the flags raised for every holder at once are exactly those of evaluating each holder on its own;
* persisting them in bulk leaves the ``flags`` table exactly as the per-flag ORM path did
  (tests/flags_reference.py), across evaluations that add, continue, reword and resolve flags.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from followup.db.models import Flag, OfferHolder
from followup.db.session import dispose_engines
from followup.flags import store
from followup.flags.rules import evaluate_many
from followup.flags.store import evaluate_now, load_histories, persist_flags
from tests.conftest import make_context
from tests.flags_reference import persist_flags_per_row
from tests.rules_fixtures import NOW, add_touch, seed_cohort

MOMENTS = [NOW, NOW + timedelta(hours=3), NOW + timedelta(days=9), NOW + timedelta(days=60)]


def _decided(decisions: Any) -> set[tuple[Any, ...]]:
    return {(d.holder_id, d.rule, d.severity, d.reason, d.action, d.since) for d in decisions}


def test_flags_for_all_holders_at_once_equal_the_per_holder_evaluation(
    any_db_url: str, tmp_path: Path
) -> None:
    context = make_context(any_db_url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    policy = context.policy
    for moment in MOMENTS:
        with context.session() as session:
            bulk = evaluate_now(session, policy, moment)
            per_holder = [
                d for h in load_histories(session, policy, moment) for d in evaluate_many([h], policy, moment)
            ]
        assert bulk and _decided(bulk) == _decided(per_holder)


def _run(url: str, tmp_path: Path, persist: Callable[..., Any]) -> list[tuple[Any, ...]]:
    context = make_context(url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    counts = []
    for n, moment in enumerate(MOMENTS):
        if n == 1:  # the mentor reaches N-002: its neglect flag resolves
            with context.session() as session:
                holder = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "N-002")).one()
                add_touch(session, holder, NOW + timedelta(hours=2))
        with context.session() as session:
            decisions = evaluate_now(session, context.policy, moment)
            changes = persist(session, decisions, moment)
            counts.append(
                (
                    sorted((r.holder_id, r.rule) for r in changes.new),
                    sorted((r.holder_id, r.rule) for r in changes.continuing),
                    sorted((r.holder_id, r.rule) for r in changes.resolved),
                )
            )
    with context.session() as session:
        rows = sorted(
            tuple(r)
            for r in session.execute(
                select(
                    Flag.holder_id,
                    Flag.rule,
                    Flag.severity,
                    Flag.reason,
                    Flag.action,
                    Flag.since,
                    Flag.first_seen,
                    Flag.last_seen,
                    Flag.resolved_at,
                )
            )
        )
    return [*counts, rows]  # type: ignore[list-item]


@pytest.fixture
def two_dbs(any_db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if any_db_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path}/reference.db"
    else:
        other = request.getfixturevalue("postgres_server").create_database(f"r_{uuid.uuid4().hex[:12]}")
    yield any_db_url, other
    dispose_engines()


def test_bulk_persist_leaves_the_same_flags_table_as_the_per_flag_path(
    two_dbs: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_url, reference_url = two_dbs
    (tmp_path / "ref").mkdir()
    (tmp_path / "bulk").mkdir()
    reference = _run(reference_url, tmp_path / "ref", persist_flags_per_row)
    monkeypatch.setattr(store, "_CHUNK", 2)  # several statements per kind of change
    bulk = _run(bulk_url, tmp_path / "bulk", persist_flags)
    assert bulk == reference
    _new, continuing, resolved = reference[1]
    assert continuing and resolved
    rows = reference[-1]
    assert any(r[-1] is not None for r in rows) and any(r[6] != r[7] for r in rows)


def test_persisting_refreshes_flags_loaded_before(sqlite_url: str, tmp_path: Path) -> None:
    context = make_context(sqlite_url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    with context.session() as session:
        persist_flags(session, evaluate_now(session, context.policy, NOW), NOW)
    later: datetime = NOW + timedelta(days=1)
    with context.session() as session:
        loaded = session.scalars(select(Flag)).all()
        persist_flags(session, evaluate_now(session, context.policy, later), later)
        assert all(f.last_seen == later for f in loaded if f.resolved_at is None)


def test_the_flags_table_shows_the_riskiest_holders_and_counts_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    from tests.cli import run_followup

    context = make_context(sqlite_url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    table = run_followup("flags", "--now", NOW.isoformat(), "--limit", "2", env=env)
    assert table.returncode == 0, table.stderr
    assert "N-005" in table.stdout and "ほか 3名" in table.stdout  # N-005 is the riskiest of 5
    full = run_followup("flags", "--now", NOW.isoformat(), env=env)
    assert "ほか" not in full.stdout and "N-002" in full.stdout
