"""Hostile input from HR's files (issue 11): CSV that would import mojibake or crash, YAML alias bombs,
and data that Rich would read as markup. Each is a clear error (exit 2) or is shown literally."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.cli import REPO, run_followup
from tests.holders.test_import import JAPANESE_HEADER, env_for, holders_json, sample_rows, write_csv

PERSONAL = ("山田", "花子", "yamada.hanako@example.ac.jp", "佐藤", "sato.kenta@example.ac.jp")


def assert_no_personal_data(output: str) -> None:
    for value in PERSONAL:
        assert value not in output, f"{value!r} leaked into the error output"


# --- CSV -------------------------------------------------------------------------------------------------


def test_a_cp932_file_with_utf8_rows_later_is_refused_not_imported_as_mojibake(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    rows = [JAPANESE_HEADER, *sample_rows()[1:]]
    head = "".join(",".join(row) + "\r\n" for row in rows[:2]).encode("cp932")
    tail = (",".join(rows[2]) + "\r\n").encode("utf-8")  # 佐藤 健太, typed into the file later
    assert tail.decode("cp932")  # the old reader took these bytes as CP932: 菴占陸 蛛･螟ｪ
    path = tmp_path / "mixed.csv"
    path.write_bytes(head + tail)

    result = run_followup("import-holders", str(path), env=env)

    assert result.returncode == 2, result.stdout
    assert f"{path}:3: " in result.stderr and "mixes two encodings" in result.stderr
    assert "Traceback" not in result.stderr
    assert holders_json(env) == []


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (1, "山田\x00花子", "name contains a control character"),
        (1, "山田\r\n花子", "name contains a control character"),
        (1, "山田\n花子", "name contains a control character"),
        (6, "営業部\u2028", "department contains a control character"),
        (2, "yamada\x00@example.ac.jp", "email contains a control character"),
        (6, "部" * 5000, "department is longer than 1000 characters"),
        (1, "山" * 200_000, "unreadable CSV (field larger than field limit"),
    ],
    ids=["nul", "crlf", "lf", "line-separator", "nul-in-email", "5000-chars", "200000-chars"],
)
def test_a_hostile_field_is_a_file_line_error_without_personal_data(
    tmp_path: Path, column: int, value: str, message: str
) -> None:
    env = env_for(tmp_path)
    rows = sample_rows()
    rows[2][column] = value  # line 3: 佐藤 健太
    path = write_csv(tmp_path / "hostile.csv", rows, "utf-8")

    result = run_followup("import-holders", str(path), env=env)

    assert result.returncode == 2, result.stdout
    assert f"{path}:3: {message}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert_no_personal_data(result.stderr + result.stdout)
    assert holders_json(env) == []


def test_row_errors_name_the_column_but_never_echo_the_value(tmp_path: Path) -> None:
    rows = sample_rows()
    rows[1][2] = "yamada.hanako at example.ac.jp"  # line 2: bad email
    rows[2][10] = "sato.kenta@"  # line 3: bad mentor email
    rows[3][0] = rows[1][0]  # line 4: duplicate id
    path = write_csv(tmp_path / "bad.csv", rows, "utf-8")

    result = run_followup("import-holders", str(path), env=env_for(tmp_path))

    assert result.returncode == 2
    assert f"{path}:2: email is not an email address" in result.stderr
    assert f"{path}:3: mentor_email is not an email address" in result.stderr
    assert f"{path}:4: duplicate external_id (first on line 2)" in result.stderr
    assert "yamada.hanako at" not in result.stderr and "sato.kenta@" not in result.stderr
    assert rows[1][0] not in result.stderr


# --- Rich markup -----------------------------------------------------------------------------------------


def test_a_holder_named_like_rich_markup_is_listed_and_shown_literally(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    rows = sample_rows()
    rows[1][1] = "[/bold]"
    rows[1][6] = "[red]営業部[/red] [link=http://x]"
    assert (
        run_followup("import-holders", str(write_csv(tmp_path / "h.csv", rows, "utf-8")), env=env).returncode
        == 0
    )
    external_id = rows[1][0]

    listed = run_followup("holders", "list", env=env)
    shown = run_followup("holders", "show", external_id, env=env)

    assert listed.returncode == 0, listed.stderr
    assert "[/bold]" in listed.stdout and "[red]営業部[/red]" in listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert "[/bold]" in shown.stdout and "[red]営業部[/red]" in shown.stdout
    assert (
        json.loads(run_followup("holders", "show", external_id, "--json", env=env).stdout)["holder"]["name"]
        == "[/bold]"
    )


# --- YAML ------------------------------------------------------------------------------------------------


def _config_with(tmp_path: Path, extra: str = "") -> Path:
    source = (REPO / "config" / "followup.yaml").read_text(encoding="utf-8")
    path = tmp_path / "config" / "followup.yaml"  # the example's templates_dir is ../templates
    path.parent.mkdir()
    path.write_text(extra + source, encoding="utf-8")
    (tmp_path / "templates").symlink_to(REPO / "templates")
    return path


BILLION_LAUGHS = """\
x-laughs:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_yaml_alias_bomb_is_refused_at_file_line_col(tmp_path: Path) -> None:
    path = _config_with(tmp_path, BILLION_LAUGHS)

    result = run_followup("check-config", "--config", str(path), timeout=60)

    assert result.returncode == 2, result.stdout[-2000:]
    assert f"{path}:" in result.stderr and "aliases" in result.stderr
    line, col = result.stderr.split(f"{path}:")[1].split(":")[:2]
    assert int(line) >= 3 and int(col) >= 1
    assert "Traceback" not in result.stderr


def test_a_few_ordinary_aliases_still_work(tmp_path: Path) -> None:
    path = _config_with(tmp_path)
    source = path.read_text(encoding="utf-8")
    path.write_text(
        source.replace("hr_email: saiyo@example.co.jp", "hr_email: &hr saiyo@example.co.jp").replace(
            "from: saiyo@example.co.jp", "from: *hr"
        ),
        encoding="utf-8",
    )
    assert "*hr" in path.read_text(encoding="utf-8")

    result = run_followup("check-config", "--config", str(path), timeout=60)

    assert result.returncode == 0, result.stderr


# --- file permissions ------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_report_outbox_and_key_are_private_files(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {
        "FOLLOWUP_VAR_DIR": str(var),
        "FOLLOWUP_DATABASE_URL": "",
        "FOLLOWUP_SECRET_KEY": "",
        "SMTP_URL": "",
        "SLACK_BOT_TOKEN": "",
        "LINE_CHANNEL_ACCESS_TOKEN": "",
    }
    old_umask = os.umask(0o022)  # the usual default: without care, files would be 0644
    try:
        sample = str(REPO / "config" / "holders.sample.csv")
        assert run_followup("import-holders", sample, env=env).returncode == 0
        run = run_followup("run", "--once", "--now", "2026-06-01T10:00:00+09:00", env=env)
        assert run.returncode == 0, run.stderr
        report = run_followup(
            "report", "--now", "2026-06-01T10:00:00+09:00", "--out", str(var / "reports" / "r.html"), env=env
        )
        assert report.returncode == 0, report.stderr
    finally:
        os.umask(old_umask)

    assert mode(var) == 0o700
    assert mode(var / "followup.db") == 0o600
    assert mode(var / "secret_key") == 0o600
    assert mode(var / "reports" / "r.html") == 0o600
    assert mode(var / "reports") == 0o700
    outbox = [p for p in var.rglob("*") if p.is_file() and "outbox" in p.parts]
    assert outbox, sorted(str(p) for p in var.rglob("*"))
    for path in outbox:
        assert mode(path) == 0o600, path
    for directory in {p.parent for p in outbox}:
        assert mode(directory) == 0o700, directory
    for path in var.glob("followup.db*"):
        assert mode(path) == 0o600, path
