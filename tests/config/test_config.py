"""The policy file: the example loads, and each kind of mistake is reported with FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from followup.config import load_policy
from followup.durations import Interval, parse_anchor, parse_interval
from followup.errors import ConfigError
from tests.cli import REPO, run_followup

EXAMPLE = (REPO / "config" / "followup.yaml").read_text(encoding="utf-8")


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "followup.yaml"
    path.write_text(
        text.replace("templates_dir: ../templates", f"templates_dir: {REPO / 'templates'}"), encoding="utf-8"
    )
    return path


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_policy(write_config(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_the_example_policy_loads_with_three_new_grad_phases() -> None:
    policy = load_policy(REPO / "config" / "followup.yaml").policy
    phases = policy.cadences["new_grad"].phases
    assert [p.name for p in phases] == ["initial", "steady", "pre_start"]
    assert [str(p.every) for p in phases] == ["1w", "1mo", "1w"]
    assert str(phases[0].end) == "offer + 6w" and str(phases[2].start) == "start - 8w"
    assert policy.organization.timezone == "Asia/Tokyo" and policy.organization.locale == "ja"
    assert "mid_career" in policy.cadences


@pytest.mark.parametrize(
    ("original", "broken", "needle", "message"),
    [
        ("  hr_phone: 03-1234-5678", "  hr_phon: 03-1234-5678", "hr_phon", "unknown key 'hr_phon'"),
        ("plan_every_minutes: 5", "plan_every_minutes: often", "plan_every_minutes", "valid integer"),
        ("        every: 1mo", "        every: 1month", "every: 1month", "bad duration '1month'"),
        ("        every: 1mo", "        every: 1.5w", "every: 1.5w", "bad duration '1.5w'"),
        ("        every: 1mo", "        every: 0w", "every: 0w", "must be greater than zero"),
        (
            "        to: start - 8w\n        every: 1mo",
            "        to: start - 8wk\n        every: 1mo",
            "start - 8wk",
            "bad anchor 'start - 8wk'",
        ),
        (
            "        from: offer + 6w\n        to: start - 8w",
            "        from: begin + 6w\n        to: start - 8w",
            "begin + 6w",
            "bad anchor 'begin + 6w'",
        ),
        (
            "        from: offer + 6w\n        to: start - 8w",
            "        from: offer + 4w\n        to: start - 8w",
            "from: offer + 4w",
            "phases overlap",
        ),
        (
            "        from: offer\n        to: offer + 6w",
            "        from: offer + 6w\n        to: offer + 2w",
            "to: offer + 2w",
            "is empty",
        ),
        (
            "templates: [prestart_checklist, checkin",
            "templates: [prestart_checklst, checkin",
            "prestart_checklst",
            "template 'prestart_checklst' not found",
        ),
        (
            "survey: {form: pre_start, every: 4}",
            "survey: {form: pre_strat, every: 4}",
            "pre_strat",
            "survey 'pre_strat' is not defined",
        ),
        ("    token: ${SLACK_BOT_TOKEN}", "    token: xoxb-123-secret", "xoxb-123-secret", "${ENV_NAME}"),
        ("  timezone: Asia/Tokyo", "  timezone: Asia/Osaka", "Asia/Osaka", "unknown time zone"),
        (
            '    start: "09:00"\n    end: "19:00"',
            '    start: "19:00"\n    end: "09:00"',
            'start: "19:00"',
            "start must be before end",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "bad-duration-unit",
        "fractional-duration",
        "zero-duration",
        "bad-offset-unit",
        "bad-anchor-base",
        "overlapping-phases",
        "empty-phase",
        "missing-template",
        "missing-survey",
        "literal-secret",
        "bad-timezone",
        "send-window-reversed",
    ],
)
def test_it_rejects_a_bad_policy_naming_line_and_column(
    tmp_path: Path, original: str, broken: str, needle: str, message: str
) -> None:
    assert original in EXAMPLE, original
    text = EXAMPLE.replace(original, broken, 1)
    problems = problems_of(tmp_path, text)
    assert len(problems) >= 1
    expected_line = line_of(text, needle)
    matching = [p for p in problems if message in p]
    assert matching, problems
    path, line, column, _ = matching[0].split(":", 3)
    assert path.endswith("followup.yaml")
    assert int(line) in (expected_line, expected_line - 1), (matching[0], expected_line)
    assert int(column) >= 1


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = EXAMPLE.replace("  name: 株式会社サンプル", "  name: [株式会社サンプル", 1)
    problems = problems_of(tmp_path, text)
    assert problems[0].split(":")[1].isdigit()
    assert "YAML" in problems[0]


def test_a_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = EXAMPLE.replace("  locale: ja\n", "  locale: ja\n  locale: en\n", 1)
    problems = problems_of(tmp_path, text)
    assert "locale" in problems[0]


def test_a_template_with_an_undefined_variable_is_a_config_error(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(REPO / "templates", templates)
    (templates / "messages" / "ja" / "checkin" / "text.j2").write_text(
        "{{ holder.nickname }} 様\n", encoding="utf-8"
    )
    path = tmp_path / "followup.yaml"
    path.write_text(
        EXAMPLE.replace("templates_dir: ../templates", f"templates_dir: {templates}"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert any("'checkin' does not render" in str(p) for p in caught.value.problems)


def test_check_config_prints_what_it_understood() -> None:
    result = run_followup("check-config")
    assert result.returncode == 0, result.stderr
    assert "new_grad" in result.stdout and "pre_start" in result.stdout and "1mo" in result.stdout


def test_check_config_exits_2_with_file_line_col(tmp_path: Path) -> None:
    path = write_config(tmp_path, EXAMPLE.replace("every: 1mo", "every: 1month", 1))
    result = run_followup("--config", str(path), "check-config")
    assert result.returncode == 2
    assert f"{path}:{line_of(path.read_text(), 'every: 1month')}:" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1w", Interval(1, "w")),
        ("14d", Interval(14, "d")),
        ("3bd", Interval(3, "bd")),
        ("1mo", Interval(1, "mo")),
    ],
)
def test_durations_parse(text: str, expected: Interval) -> None:
    assert parse_interval(text) == expected


def test_anchors_parse_with_offsets_and_absolute_dates() -> None:
    assert str(parse_anchor("start - 8w")) == "start - 8w"
    assert str(parse_anchor("offer+1d")) == "offer + 1d"
    assert str(parse_anchor("2026-10-01")) == "2026-10-01"
