"""``followup <command> --help`` starts at once: asking a command for its help imports neither the ORM,
the policy schema, matplotlib, FastAPI nor Celery (issue 18, "Startup"). A child interpreter runs the
real entry point with ``--help`` and reports what it loaded, so a heavy import that creeps back into a
command module's top level fails here, whatever the machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from followup.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]

# Modules whose import is the slow part of a start (measured with python -X importtime).
HEAVY = (
    "sqlalchemy",
    "followup.config.schema",  # the policy's pydantic models (schema build ~110 ms)
    "followup.config.settings",  # pydantic-settings
    "followup.db",
    "matplotlib",
    "fastapi",
    "celery",
    "jinja2",
)

CHILD = """
import json, sys
from followup.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")})
print("\\n@@" + json.dumps({"code": code, "heavy": heavy}))
"""


def loaded_by(*argv: str) -> dict[str, object]:
    """Exit code and heavy modules after ``followup ARGV`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FOLLOWUP_DATABASE_URL": "sqlite:///nowhere.db"}
    program = f"HEAVY = {HEAVY!r}\n{CHILD}"
    done = subprocess.run(
        [sys.executable, "-c", program, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "@@" in done.stdout, done.stderr
    report: dict[str, object] = json.loads(done.stdout.rsplit("@@", 1)[1])
    return report


def test_the_child_sees_heavy_imports_when_a_command_runs() -> None:
    """The probe itself works: a command that reads the policy does load the schema."""
    report = loaded_by("check-config", "--config", str(REPO / "config" / "followup.yaml"))
    assert "followup.config.schema" in report["heavy"]  # type: ignore[operator]


@pytest.mark.parametrize("command", sorted(set(COMMANDS)))
def test_command_help_imports_nothing_heavy(command: str) -> None:
    report = loaded_by(command, "--help")
    assert report["code"] == 0
    assert report["heavy"] == [], f"`followup {command} --help` imported {report['heavy']}"


SUBCOMMANDS = (
    ("holders", "list"),
    ("holders", "show"),
    ("events", "show"),
    ("tasks", "show"),
    ("pool", "list"),
    ("workspace", "invite"),
    ("db", "upgrade"),
)


@pytest.mark.parametrize(("group", "sub"), SUBCOMMANDS)
def test_subcommand_help_imports_nothing_heavy(group: str, sub: str) -> None:
    report = loaded_by(group, sub, "--help")
    assert report["code"] == 0
    assert report["heavy"] == [], f"`followup {group} {sub} --help` imported {report['heavy']}"
