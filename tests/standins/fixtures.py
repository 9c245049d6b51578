"""pytest fixtures for the in-process stand-ins.

Each fixture is registered under its short name (``smtp_sink``, ``slack_api``, ``line_api``). Import the
``*_fixture`` alias into a test module (``from tests.standins.fixtures import smtp_sink_fixture  # noqa:
F401``) so that test parameters named ``smtp_sink`` do not shadow the import (ruff F811).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.line_api import LineApi
from tests.standins.slack_api import SlackApi
from tests.standins.smtp_sink import SmtpSink

REJECTED_ADDRESS = "nobody@example.com"  # the sink answers RCPT for this address with 550


@pytest.fixture(name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    sink = SmtpSink(reject={REJECTED_ADDRESS}).start()
    yield sink
    sink.stop()


@pytest.fixture(name="slack_api")
def slack_api_fixture() -> Iterator[SlackApi]:
    api = SlackApi().start()
    yield api
    api.stop()


@pytest.fixture(name="line_api")
def line_api_fixture() -> Iterator[LineApi]:
    api = LineApi().start()
    yield api
    api.stop()


# Plain names too, for `from tests.standins.fixtures import smtp_sink`.
smtp_sink = smtp_sink_fixture
slack_api = slack_api_fixture
line_api = line_api_fixture
