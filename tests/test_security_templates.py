"""An HR template cannot exhaust memory or time, and a variable typo in any branch is found at load
(issue 11). Against the real MessageTemplates and the real `followup check-config`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from followup.rendering.templates import MessageTemplates, TemplateProblem, sample_context
from tests.cli import REPO, run_followup
from tests.rendering.test_rendering import write_message

BOMBS = {
    "replace": "{{ ('x' * 100000) | replace('x', 'xxxxxxxxxx') | length }}",
    "replace-method": "{{ ('x' * 100000).replace('x', 'x' * 1000) | length }}",
    "join": "{{ (['x' * 100000] * 100000) | join | length }}",
    "join-method": "{{ ''.join(['x' * 100000] * 100000) | length }}",
    "tilde-doubling": (
        "{% set s = 'x' * 100000 %}{% for i in range(30) %}{% set s = s ~ s %}{% endfor %}"
        "{% set ns = namespace(s='x' * 50000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}"
    ),
    "list-plus-doubling": (
        "{% set ns = namespace(l=['x'] * 60000) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}"
        "{% endfor %}{{ ns.l | length }}"
    ),
    "nested-loops": (
        "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "nested-loops-over-strings": (
        "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    ),
    "output-flood": "{% for a in range(10000) %}{{ 'x' * 100000 }}{% endfor %}",
    "lipsum": "{{ lipsum(10**7) }}",
    "huge-range": "{% for i in range(10**9) %}{% endfor %}",
}


@pytest.mark.parametrize("payload", list(BOMBS.values()), ids=list(BOMBS))
def test_a_template_bomb_is_a_located_problem_within_seconds(tmp_path: Path, payload: str) -> None:
    text = write_message(tmp_path, "bomb", "ご案内\n" + payload + "\n")

    started = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        MessageTemplates(tmp_path).render("bomb", sample_context())
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert caught.value.path == text.resolve()
    assert caught.value.line == 2 or "output longer" in caught.value.message
    assert "sandbox" in caught.value.message or "undefined" in caught.value.message


def test_ordinary_templates_still_render_with_loops_join_and_replace(tmp_path: Path) -> None:
    write_message(
        tmp_path,
        "fine",
        "{{ holder.name | replace(' ', '') }}様\n"
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ ['a', 'b'] | join('/') }} {{ 'ab' ~ 'cd' }}"
        " {{ ([1] + [2]) | length }}\n",
    )
    msg = MessageTemplates(tmp_path).render("fine", sample_context())
    assert "山田花子様" in msg.text and "012 a/b abcd 2" in msg.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{% if holder.track == 'mid_career' %}{{ holder.nmae }}{% endif %}", "holder.nmae is undefined"),
        ("{% if days_until_start > 10000 %}{{ mentor_name }}{% endif %}", "undefined variable 'mentor_name'"),
        ("{% if not event %}{{ evnt.title }}{% endif %}", "undefined variable 'evnt'"),
    ],
    ids=["attribute-typo", "unknown-name", "name-typo-in-else"],
)
def test_an_undefined_variable_in_a_branch_the_sample_skips_is_found(
    tmp_path: Path, body: str, message: str
) -> None:
    text = write_message(tmp_path, "branchy", "ご案内\n" + body + "\n")
    templates = MessageTemplates(tmp_path)
    templates.render("branchy", sample_context())  # the sample data takes the other branch: renders fine

    with pytest.raises(TemplateProblem) as caught:
        templates.check("branchy")

    assert caught.value.path == text.resolve() and caught.value.line == 2
    assert message in caught.value.message


def test_locals_and_loop_variables_are_not_mistaken_for_context(tmp_path: Path) -> None:
    write_message(
        tmp_path,
        "locals",
        "{% set greeting = holder.name %}{% for item in [1, 2] %}{{ item }}{{ loop.index }}{% endfor %}"
        "{% with x = 1 %}{{ x }}{% endwith %}{{ greeting }}{{ holder.get('name') }}\n",
    )
    MessageTemplates(tmp_path).check("locals")


def _hr_repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path / "config" / "followup.yaml"


def test_check_config_reports_a_template_typo_in_an_untaken_branch(tmp_path: Path) -> None:
    config = _hr_repo_copy(tmp_path)
    text = tmp_path / "templates" / "messages" / "ja" / "checkin" / "text.j2"
    text.write_text(
        text.read_text(encoding="utf-8")
        + "{% if holder.track == 'mid_career' %}{{ holder.nmae }}{% endif %}\n",
        encoding="utf-8",
    )

    result = run_followup("check-config", "--config", str(config))

    assert result.returncode == 2
    assert "holder.nmae is undefined" in result.stderr and "checkin" in result.stderr


def test_check_config_refuses_a_template_bomb_quickly(tmp_path: Path) -> None:
    config = _hr_repo_copy(tmp_path)
    text = tmp_path / "templates" / "messages" / "ja" / "checkin" / "text.j2"
    text.write_text(BOMBS["nested-loops"] + "\n" + text.read_text(encoding="utf-8"), encoding="utf-8")

    started = time.monotonic()
    result = run_followup("check-config", "--config", str(config), timeout=60)

    assert result.returncode == 2 and time.monotonic() - started < 30
    assert "rendering took longer than" in result.stderr
