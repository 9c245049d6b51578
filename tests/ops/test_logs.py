"""Logs carry no personal data: addresses, LINE/Slack ids, phone numbers and link tokens are masked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from followup.ops.logs import configure_logging, mask


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("send to yamada.hanako@example.ac.jp failed", "send to <email> failed"),
        ("LINE Uf3a9c0d4e5b6a7980a1b2c3d4e5f6a7b unfollowed", "LINE <line-user> unfollowed"),
        ("slack U0798935572 not found", "slack <slack-user> not found"),
        ("call 03-1234-5678", "call <phone>"),
        ('"GET /s/eyJ0IjozfQ.Z2pKQQ.abcdefghijklmnopqrstuv HTTP/1.1" 200', '"GET /s/<token> HTTP/1.1" 200'),
        ("POST /opt-out/eyJoIjoxLCJjIjoiZW1haWwifQ.xyzxyzxyzxyzxyzxyz", "POST /opt-out/<token>"),
        ("GET /dashboard?token=s3cret-token&x=1", "GET /dashboard?token=<token>&x=1"),
        ("UNREACHABLE WORKFLOWS stay readable", "UNREACHABLE WORKFLOWS stay readable"),
    ],
)
def test_it_masks_personal_data_and_tokens(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_json_log_lines_are_masked_including_arguments_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_lines=True)
    log = logging.getLogger("followup.test")
    try:
        raise ValueError("550 rejected hanako@example.ac.jp")
    except ValueError:
        log.exception("delivery to %s failed", "taro@example.co.jp")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["msg"] == "delivery to <email> failed"
    assert "hanako@" not in line["exc"] and "<email>" in line["exc"]
    assert line["level"] == "error"


def test_plain_log_lines_mask_tracebacks_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_lines=False)
    try:
        raise RuntimeError("no such user U0798935572")
    except RuntimeError:
        logging.getLogger("followup.test").exception("failed")
    err = capsys.readouterr().err
    assert "U0798935572" not in err and "<slack-user>" in err
