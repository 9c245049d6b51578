"""`holders list --json` streams (issue 18): keyset pages give every holder once, in order."""

from __future__ import annotations

import json
from pathlib import Path

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
