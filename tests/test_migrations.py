"""The schema check every command does on first opening the database reads the head from the file
names (no Alembic import): it must agree with Alembic, and a database behind it must be migrated."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from followup.db.session import alembic_config, dispose_engines, get_engine, head_revision


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert head_revision() == script.get_current_head()
    for revision in script.walk_revisions():  # each file is named after its revision
        assert Path(revision.path).name.startswith(f"{revision.revision}_")
        if revision.down_revision is not None:
            assert str(revision.down_revision) < revision.revision  # they chain in number order


def test_a_new_database_is_migrated_and_one_behind_is_brought_to_the_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/followup.db"
    get_engine(url)
    dispose_engines()
    command.downgrade(alembic_config(url), "0010")  # a database from before the talent pool
    raw = create_engine(url)
    assert "consent_source" not in {c["name"] for c in inspect(raw).get_columns("offer_holders")}
    raw.dispose()
    get_engine(url)  # behind the head: migrated on first use
    dispose_engines()
    raw = create_engine(url)
    with raw.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    assert "consent_source" in {c["name"] for c in inspect(raw).get_columns("offer_holders")}
    raw.dispose()
