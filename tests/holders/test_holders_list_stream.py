"""`holders list --json` streams (issue 18): keyset pages give every holder once, in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from followup.cli.holders_cmd import iter_holder_records
from followup.db.session import session_scope
from followup.holders.importer import import_holders, read_holders_csv
from tests.cli import REPO, run_followup
from tests.rules_fixtures import NOW


def test_pages_give_every_holder_once_in_order(sqlite_url: str) -> None:
    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    with session_scope(sqlite_url) as session:
        import_holders(session, rows, now=NOW)
    with session_scope(sqlite_url) as session:
        whole = list(iter_holder_records(session, None, page=1000))
        paged = list(iter_holder_records(session, None, page=4))
        accepted = list(iter_holder_records(session, "accepted", page=3))
    assert len(whole) == 30 and paged == whole
    assert [r["external_id"] for r in whole] == sorted(r.external_id for r in rows)
    assert accepted == [r for r in whole if r["status"] == "accepted"] and accepted


def test_the_json_list_is_one_valid_document(tmp_path: Path) -> None:
    env = {"FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db", "FOLLOWUP_VAR_DIR": str(tmp_path)}
    empty = run_followup("holders", "list", "--json", env=env)
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    run_followup("import-holders", str(REPO / "config" / "holders.sample.csv"), env=env)
    listed = run_followup("holders", "list", "--json", env=env)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 30


def test_streamed_rows_give_the_same_records_as_the_orm_holders(sqlite_url: str) -> None:
    """The streamed records (plain rows) equal holder_record of each ORM holder with its opt-outs:
    channel addresses, opt-outs and an erased holder included."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from followup.config import load_policy
    from followup.db.models import ChannelOptOut, OfferHolder
    from followup.holders.erasure import erase_holder
    from followup.holders.timeline import holder_record

    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    policy = load_policy(REPO / "config" / "followup.yaml").policy
    with session_scope(sqlite_url) as session:
        import_holders(session, rows, now=NOW)
    with session_scope(sqlite_url) as session:
        holders = list(session.scalars(select(OfferHolder).order_by(OfferHolder.external_id)))
        holders[0].line_user_id, holders[0].slack_user_id = "U-line-1", "U-slack-1"
        holders[1].addresses = {"unregistered_field": "kept out of the record"}
        session.add_all(
            [
                ChannelOptOut(holder_id=holders[0].id, channel="line"),
                ChannelOptOut(holder_id=holders[0].id, channel="email"),
                ChannelOptOut(holder_id=holders[2].id, channel="slack"),
            ]
        )
        erase_holder(session, holders[3], policy, now=NOW, actor="test")
    with session_scope(sqlite_url) as session:
        streamed = list(iter_holder_records(session, None, page=7))
        expected = [
            holder_record(h, [o.channel for o in h.opt_outs])
            for h in session.scalars(
                select(OfferHolder)
                .options(selectinload(OfferHolder.opt_outs))
                .order_by(OfferHolder.external_id)
            )
        ]
    assert streamed == expected and len(streamed) == 30
    by_id = {r["external_id"]: r for r in streamed}
    first = by_id[holders[0].external_id]
    assert first["opted_out_channels"] == ["email", "line"]
    assert (first["line_user_id"], first["slack_user_id"]) == ("U-line-1", "U-slack-1")
    assert sum(r["erased"] for r in streamed) == 1
    assert json.dumps(streamed, ensure_ascii=False)  # JSON-ready: dates are ISO strings


def test_the_table_shows_a_screenful_and_says_how_many_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more holders than the table shows, the title counts all and a note says how to get them."""
    from typer.testing import CliRunner

    from followup.cli import app, holders_cmd

    env = {"FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db", "FOLLOWUP_VAR_DIR": str(tmp_path)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run_followup("import-holders", str(REPO / "config" / "holders.sample.csv"), env=env)
    monkeypatch.setattr(holders_cmd, "TABLE_ROWS", 5)
    shown = CliRunner().invoke(app, ["holders", "list"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "内定者 30名" in shown.output
    assert "先頭 5名を表示(全 30名)" in shown.output
    assert shown.output.count("-2026-") + shown.output.count("-2027-") == 5  # MC-2026-…, NG-2027-…
    everyone = run_followup("holders", "list", env=env)
    assert "先頭" not in everyone.stdout
    assert everyone.stdout.count("-2026-") + everyone.stdout.count("-2027-") == 30
