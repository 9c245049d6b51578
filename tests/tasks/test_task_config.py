"""The ``tasks:`` section: the example's 提出物 load, and each mistake names its FILE:LINE:COL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from followup.config import load_policy
from followup.durations import Interval, Offset, parse_offset
from tests.cli import REPO
from tests.config.test_config import EXAMPLE, line_of, problems_of, write_config


def test_the_example_has_the_four_tasks_with_their_due_dates() -> None:
    policy = load_policy(REPO / "config" / "followup.yaml").policy
    assert [t.title for t in policy.tasks.values()] == [
        "入社承諾書",
        "身元保証書",
        "健康診断書",
        "入社前研修(eラーニング)",
    ]
    dates: dict[str, date | None] = {"offer": date(2026, 6, 1), "accepted": None, "start": date(2027, 4, 1)}
    assert policy.tasks["acceptance_letter"].due_on(dates) == date(2026, 6, 15)
    assert policy.tasks["guarantee"].due_on(dates) == date(2027, 2, 18)
    assert [str(r) for r in policy.tasks["guarantee"].remind] == ["-1w", "-1bd", "+2bd"]
    assert policy.tasks["elearning"].kind == "learning"
    assert policy.tasks["health_check"].applies("new_grad", None)
    assert not policy.tasks["health_check"].applies("mid_career", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1w", Offset(-1, Interval(1, "w"))),
        ("-1bd", Offset(-1, Interval(1, "bd"))),
        ("+2bd", Offset(1, Interval(2, "bd"))),
        ("3d", Offset(1, Interval(3, "d"))),
        ("0d", Offset(1, Interval(0, "d"))),
    ],
)
def test_reminder_offsets_parse_with_their_sign(text: str, expected: Offset) -> None:
    assert parse_offset(text) == expected


def test_an_offset_counts_business_days_back_over_a_weekend() -> None:
    monday = date(2027, 2, 15)
    assert parse_offset("-1bd").apply(monday) == date(2027, 2, 12)


@pytest.mark.parametrize(
    ("original", "broken", "needle", "message"),
    [
        ("    remind: [-1w, -1bd, +2bd]", "    remind: [-1w, -1x, +2bd]", "-1x", "bad offset '-1x'"),
        ("    due: start - 6w ", "    due: event - 6w ", "due: event - 6w", "a task is due relative to"),
        ("    due: start - 6w ", "    due: strat - 6w ", "strat - 6w", "bad anchor"),
        ("    remind: [-1w, -1bd, +2bd]", "    remind: [-1w, -1w]", "remind: [-1w, -1w]", "each offset once"),
        (
            "    title: 身元保証書\n",
            "    title: 身元保証書\n    templat: x\n",
            "templat: x",
            "unknown key 'templat'",
        ),
        (
            "    title: 身元保証書\n",
            "    title: 身元保証書\n    template: task_remindr\n",
            "task_remindr",
            "template 'task_remindr' not found",
        ),
    ],
    ids=["bad-offset", "event-anchor", "bad-anchor", "duplicate-offset", "unknown-key", "missing-template"],
)
def test_a_bad_task_is_refused_naming_line_and_column(
    tmp_path: Path, original: str, broken: str, needle: str, message: str
) -> None:
    assert original in EXAMPLE, original
    text = EXAMPLE.replace(original, broken, 1)
    problems = problems_of(tmp_path, text)
    matching = [p for p in problems if message in p]
    assert matching, problems
    path, line, column, _ = matching[0].split(":", 3)
    assert path.endswith("followup.yaml")
    assert int(line) in (line_of(text, needle), line_of(text, needle) - 1), matching[0]
    assert int(column) >= 1


def test_a_task_name_that_cannot_be_a_key_is_refused(tmp_path: Path) -> None:
    text = EXAMPLE.replace("  guarantee:\n", "  身元:\n", 1)
    problems = problems_of(tmp_path, text)
    assert any("letters, digits and _ only" in p for p in problems), problems


def test_the_reminder_template_renders_in_keigo_with_the_due_date(tmp_path: Path) -> None:
    from followup.config.messages import sample_contexts
    from followup.rendering.templates import MessageTemplates

    loaded = load_policy(write_config(tmp_path, EXAMPLE))
    templates = MessageTemplates(loaded.templates_root, "ja")
    (_, context), *_ = sample_contexts(
        loaded.policy, "task_reminder", [("task", "身元保証書", None)], task="guarantee"
    )
    rendered = templates.render("task_reminder", context)
    assert "身元保証書" in rendered.subject and "2027年2月18日" in rendered.subject
    assert "ご提出期限が2027年2月18日" in rendered.text
    assert "ご郵送ください" in rendered.text
    overdue = templates.render("task_reminder", {**context, "task": {**context["task"], "overdue": True}})
    assert "まだご提出を確認できておりません" in overdue.text
