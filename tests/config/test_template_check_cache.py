"""Every command loads the policy, and the template render checks cost most of a second: a check that
passed is remembered by a digest of the policy and every template file, and any edit checks again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from followup.config import load_policy
from followup.errors import ConfigError
from followup.rendering.templates import MessageTemplates
from tests.cli import REPO


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A copy of the example policy and templates, a private cache, and a log of rendered checks."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    checked: list[str] = []
    original = MessageTemplates.check

    def counting(self: MessageTemplates, name: str) -> None:
        checked.append(name)
        original(self, name)

    monkeypatch.setattr(MessageTemplates, "check", counting)
    return tmp_path / "config" / "followup.yaml", checked


def test_a_passed_check_is_not_rendered_again_until_a_template_changes(
    setup: tuple[Path, list[str]],
) -> None:
    config, checked = setup
    load_policy(config)
    first = len(checked)
    assert first > 10  # every template was rendered once
    load_policy(config)
    assert len(checked) == first  # the same files: nothing rendered again
    checkin = config.parent.parent / "templates" / "messages" / "ja" / "checkin" / "text.j2"
    checkin.write_text(checkin.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    load_policy(config)
    assert len(checked) == 2 * first  # one byte changed: checked again


def test_a_broken_template_is_reported_even_after_the_good_version_passed(
    setup: tuple[Path, list[str]],
) -> None:
    config, _ = setup
    load_policy(config)
    checkin = config.parent.parent / "templates" / "messages" / "ja" / "checkin" / "text.j2"
    checkin.write_text(checkin.read_text(encoding="utf-8") + "{{ holder.name", encoding="utf-8")
    with pytest.raises(ConfigError, match="checkin"):
        load_policy(config)
    with pytest.raises(ConfigError, match="checkin"):  # a failure is never remembered
        load_policy(config)
