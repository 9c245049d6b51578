"""``followup workspace invite``: a mentor's sign-in link, printed or mailed (real SMTP: aiosmtpd)."""

from __future__ import annotations

import re
from pathlib import Path

from followup.delivery.links import LinkSigner
from tests.cli import run_followup
from tests.standins.smtp_sink import SmtpSink

SECRET = "test-secret-key-" + "x" * 32


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path),
        "FOLLOWUP_SECRET_KEY": SECRET,
        "FOLLOWUP_BASE_URL": "https://followup.example.co.jp",
        **extra,
    }


def test_invite_prints_a_signed_link_for_the_mentor_by_name(tmp_path: Path) -> None:
    result = run_followup("workspace", "invite", "田中 健太", "--print", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://followup.example.co.jp/m/")
    signer = LinkSigner(SECRET, "https://followup.example.co.jp")
    assert signer.read_mentor_token(url.rsplit("/", 1)[1]) == "tanaka.k@example.co.jp"


def test_invite_mails_the_link_in_keigo(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    result = run_followup(
        "workspace", "invite", "kobayashi.m@example.co.jp", env=_env(tmp_path, SMTP_URL=smtp_sink.url)
    )
    assert result.returncode == 0, result.stderr
    [mail] = smtp_sink.messages
    message = mail.message()
    assert message["To"] == "kobayashi.m@example.co.jp"
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert body.startswith("小林 美咲 様") and "ご確認いただけます" in body
    assert re.search(r"https://followup\.example\.co\.jp/m/\S+", body)


def test_an_unknown_mentor_is_a_usage_error(tmp_path: Path) -> None:
    result = run_followup("workspace", "invite", "誰か", "--print", env=_env(tmp_path))
    assert result.returncode == 2 and "メンターが見つかりません" in result.stderr
