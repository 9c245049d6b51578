"""pytest fixtures for the in-process stand-ins; import them into a test module by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.line_api import LineApi
from tests.standins.slack_api import SlackApi
from tests.standins.smtp_sink import SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(reject={"nobody@example.com"}).start()
    yield sink
    sink.stop()


@pytest.fixture
def slack_api() -> Iterator[SlackApi]:
    with SlackApi() as api:
        yield api  # type: ignore[misc]


@pytest.fixture
def line_api() -> Iterator[LineApi]:
    with LineApi() as api:
        yield api  # type: ignore[misc]
