"""Secrets, link tokens, dashboard sign-in and response headers (issue 11), against the real app."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from followup.config.settings import Settings
from followup.db.session import dispose_engines
from followup.delivery.links import OPT_OUT_SALT, SURVEY_SALT, LinkSigner
from followup.errors import SettingsError
from followup.web import create_app
from tests import web_fixtures
from tests.cli import REPO, run_followup
from tests.web_fixtures import DASHBOARD_TOKEN, WebEnv, make_web_context

web = web_fixtures.web  # the fixture, used by name

LONG = "a-long-enough-secret-for-the-tests-0123456789"
HOW = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def example_secrets() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.startswith("FOLLOWUP_") and ("SECRET" in name or "TOKEN" in name) and value:
            values[name] = value
    assert set(values) >= {"FOLLOWUP_SECRET_KEY", "FOLLOWUP_DASHBOARD_TOKEN"}
    return values


# --- secrets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["FOLLOWUP_SECRET_KEY", "FOLLOWUP_DASHBOARD_TOKEN"])
def test_the_example_secrets_from_env_example_are_refused_by_the_cli(tmp_path: Path, name: str) -> None:
    value = example_secrets()[name]
    env = {"FOLLOWUP_VAR_DIR": str(tmp_path), "FOLLOWUP_SECRET_KEY": LONG, "FOLLOWUP_DASHBOARD_TOKEN": LONG}
    env[name] = value

    for command in (["check-config"], ["holders", "list"]):
        result = run_followup(*command, env=env)

        assert result.returncode == 2, result.stdout
        assert name in result.stderr and ".env.example" in result.stderr and HOW in result.stderr
        assert "Traceback" not in result.stderr


def test_every_secret_in_env_example_is_refused_even_padded_to_length() -> None:
    for value in example_secrets().values():
        with pytest.raises(SettingsError):
            Settings(secret_key=value)
        with pytest.raises(SettingsError):
            Settings(dashboard_token=value)
        with pytest.raises(SettingsError):
            Settings(secret_key=LONG, secret_key_previous=f"old-key-{'x' * 40},{value}")


@pytest.mark.parametrize("name", ["FOLLOWUP_SECRET_KEY", "FOLLOWUP_DASHBOARD_TOKEN"])
def test_a_secret_shorter_than_32_characters_is_refused_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    env = {"FOLLOWUP_VAR_DIR": str(tmp_path), name: "x" * 31}

    result = run_followup("check-config", env=env)

    assert result.returncode == 2
    assert f"{name} is shorter than 32 characters" in result.stderr and HOW in result.stderr
    assert "x" * 31 not in result.stderr  # the value itself is never printed


def test_an_unset_secret_falls_back_to_the_generated_key_and_32_characters_pass(tmp_path: Path) -> None:
    env = {"FOLLOWUP_VAR_DIR": str(tmp_path), "FOLLOWUP_SECRET_KEY": "", "FOLLOWUP_DASHBOARD_TOKEN": "y" * 32}
    assert run_followup("check-config", env=env).returncode == 0
    assert Settings(secret_key="", dashboard_token="").secret_key == ""


def test_a_bad_trusted_proxy_entry_is_refused() -> None:
    with pytest.raises(SettingsError, match="FOLLOWUP_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.example")


# --- opaque ids in link tokens ---------------------------------------------------------------------------


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(data, dict)
    return data


def test_link_tokens_carry_no_readable_id_and_still_resolve() -> None:
    signer = LinkSigner(LONG, "https://followup.example.jp")
    survey = signer.survey_token(17)
    opt_out = signer.opt_out_token(3, "email")

    assert set(_payload(survey)) == {"s"} and len(str(_payload(survey)["s"])) == 22
    assert set(_payload(opt_out)) == {"o", "c"}  # no readable holder id
    sealed = [str(_payload(signer.survey_token(n))["s"]) for n in (17, 18, 19)]
    assert len({s[:8] for s in sealed}) == 3  # neighbouring ids look unrelated
    assert _payload(signer.survey_token(17)) == _payload(survey)  # stable per touch
    assert signer.read_survey_token(survey, 3600) == 17
    assert signer.read_opt_out_token(opt_out) == (3, "email")
    assert LinkSigner(LONG + "-next", "https://x", previous=(LONG,)).read_survey_token(survey, 3600) == 17


def test_old_format_links_already_delivered_still_open_and_forged_ones_do_not() -> None:
    signer = LinkSigner(LONG, "https://followup.example.jp")
    old_survey = URLSafeTimedSerializer(LONG, salt=SURVEY_SALT).dumps({"t": 17})
    old_opt_out = URLSafeTimedSerializer(LONG, salt=OPT_OUT_SALT).dumps({"h": 3, "c": "line"})
    forged = URLSafeTimedSerializer("change-me-to-a-long-random-string", salt=SURVEY_SALT).dumps({"t": 17})

    assert signer.read_survey_token(str(old_survey), 3600) == 17
    assert signer.read_opt_out_token(str(old_opt_out)) == (3, "line")
    from followup.delivery.links import LinkInvalid

    with pytest.raises(LinkInvalid):
        signer.read_survey_token(str(forged), 3600)


def test_the_survey_page_opens_from_a_sealed_token(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    token = web.signer.survey_token(touch_id)
    assert set(_payload(token)) == {"s"}  # the sealed id only

    assert web.client.get(f"/s/{token}").status_code == 200


# --- dashboard sessions ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[TestClient, Clock]]:
    clock = Clock()
    context = make_web_context(tmp_path)
    with TestClient(create_app(context, clock=clock), follow_redirects=False) as client:
        yield client, clock
    dispose_engines()


def _sign_in(client: TestClient) -> str:
    response = client.get(f"/dashboard?token={DASHBOARD_TOKEN}")
    assert response.status_code == 303
    cookie = response.cookies.get("followup_dashboard")
    assert cookie
    return cookie


def test_a_session_cookie_expires_when_idle_and_is_renewed_on_use(clocked: tuple[TestClient, Clock]) -> None:
    client, clock = clocked
    first = _sign_in(client)
    set_cookie = client.get(f"/dashboard?token={DASHBOARD_TOKEN}").headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "Max-Age=28800" in set_cookie and "SameSite=lax" in set_cookie

    clock.now += timedelta(hours=7)  # still inside the 8 h idle limit: used, and so renewed
    used = client.get("/dashboard", cookies={"followup_dashboard": first})
    assert used.status_code == 200
    renewed = used.cookies.get("followup_dashboard")
    assert renewed and renewed != first

    clock.now += timedelta(hours=7)  # 14 h after sign-in: the old cookie is idle too long, the new one is not
    assert client.get("/api/holders", cookies={"followup_dashboard": first}).status_code == 401
    assert client.get("/api/holders", cookies={"followup_dashboard": renewed}).status_code == 200

    clock.now += timedelta(hours=8, seconds=1)
    assert client.get("/api/holders", cookies={"followup_dashboard": renewed}).status_code == 401


def test_a_session_ends_after_24_hours_even_in_constant_use(clocked: tuple[TestClient, Clock]) -> None:
    client, clock = clocked
    cookie = _sign_in(client)
    for _ in range(13):
        clock.now += timedelta(hours=2)
        response = client.get("/api/holders", cookies={"followup_dashboard": cookie})
        if response.status_code != 200:
            break
        cookie = response.cookies.get("followup_dashboard") or cookie
    assert response.status_code == 401
    assert clock.now - datetime(2026, 7, 1, 1, 0, tzinfo=UTC) == timedelta(hours=26)  # refused after 24 h


def test_the_old_fixed_hmac_cookie_no_longer_opens_the_dashboard(clocked: tuple[TestClient, Clock]) -> None:
    import hashlib
    import hmac

    client, _ = clocked
    key = "test-secret-key-" + "x" * 32
    fixed = hmac.new(key.encode(), b"dashboard:" + DASHBOARD_TOKEN.encode(), hashlib.sha256).hexdigest()

    assert client.get("/api/holders", cookies={"followup_dashboard": fixed}).status_code == 401


def test_signing_out_revokes_the_session(clocked: tuple[TestClient, Clock]) -> None:
    client, _ = clocked
    cookie = _sign_in(client)
    assert client.get("/api/holders", cookies={"followup_dashboard": cookie}).status_code == 200

    out = client.post("/dashboard/sign-out", cookies={"followup_dashboard": cookie})

    assert out.status_code == 200 and 'followup_dashboard=""' in out.headers["set-cookie"]
    assert client.get("/api/holders", cookies={"followup_dashboard": cookie}).status_code == 401


def test_wrong_tokens_are_limited_per_client_then_429_with_retry_after(
    clocked: tuple[TestClient, Clock],
) -> None:
    client, _ = clocked
    wrong = {"Authorization": "Bearer " + "w" * 40}
    answers = [client.get("/api/holders", headers=wrong).status_code for _ in range(10)]
    assert answers == [401] * 10

    limited = client.get("/api/holders", headers=wrong)
    also_right_token = client.get("/api/holders", headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    by_login = client.get("/dashboard?token=guess")

    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert also_right_token.status_code == 429 and by_login.status_code == 429
    other = TestClient(client.app, client=("192.0.2.7", 5000))  # another client is not held back
    assert (
        other.get("/api/holders", headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"}).status_code == 200
    )


def test_the_guess_limit_lifts_after_the_window(tmp_path: Path) -> None:
    from followup.web.auth import GuessLimiter

    now = [1000.0]
    limiter = GuessLimiter(clock=lambda: now[0])
    for _ in range(10):
        limiter.fail("198.51.100.1")
    assert limiter.retry_after("198.51.100.1") == 60
    now[0] += 30
    assert limiter.retry_after("198.51.100.1") == 30
    now[0] += 30
    assert limiter.retry_after("198.51.100.1") is None


# --- trusted proxies, Secure, HSTS, CSP ------------------------------------------------------------------


def _client_for(tmp_path: Path, peer: str, trusted: str = "") -> TestClient:
    context = make_web_context(tmp_path, trusted_proxies=trusted)
    return TestClient(create_app(context), follow_redirects=False, client=(peer, 4000))


def test_forwarded_https_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    login = f"/dashboard?token={DASHBOARD_TOKEN}"

    untrusted = _client_for(tmp_path, "127.0.0.1").get(login, headers=forwarded)
    trusted = _client_for(tmp_path, "10.0.0.2", trusted="10.0.0.0/8").get(login, headers=forwarded)

    assert "secure" not in untrusted.headers["set-cookie"].lower()
    assert "Strict-Transport-Security" not in untrusted.headers
    assert "secure" in trusted.headers["set-cookie"].lower()
    assert trusted.headers["Strict-Transport-Security"].startswith("max-age=")
    dispose_engines()


def test_the_guess_limit_follows_the_client_a_trusted_proxy_reports(tmp_path: Path) -> None:
    client = _client_for(tmp_path, "10.0.0.2", trusted="10.0.0.0/8")
    wrong = {"Authorization": "Bearer " + "w" * 40}
    for _ in range(10):
        client.get("/api/holders", headers={**wrong, "X-Forwarded-For": "203.0.113.9"})

    same = client.get("/api/holders", headers={**wrong, "X-Forwarded-For": "203.0.113.9"})
    spoofed = client.get("/api/holders", headers={**wrong, "X-Forwarded-For": "203.0.113.9, 10.0.0.3"})
    other = client.get("/api/holders", headers={**wrong, "X-Forwarded-For": "203.0.113.10"})

    assert same.status_code == 429 and spoofed.status_code == 429  # trusted hops are skipped from the right
    assert other.status_code == 401
    dispose_engines()


def test_every_page_has_a_csp_without_inline_script_and_no_framing(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    pages = [
        web.client.get(f"/s/{web.signer.survey_token(touch_id)}"),
        web.client.get("/s/forged"),
        web.client.get(f"/dashboard?token={DASHBOARD_TOKEN}", follow_redirects=True),
        web.client.get("/healthz"),
    ]
    for response in pages:
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "script-src" not in csp  # default-src 'none': no script of any kind
        assert response.headers["X-Frame-Options"] == "DENY"
    for response in pages[:3]:
        assert "<script" not in response.text  # what the CSP allows is what the pages need
    assert "Strict-Transport-Security" not in pages[0].headers  # plain http here


def test_followup_web_ignores_forwarded_headers_from_localhost_unless_trusted(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/web.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path),
        "FOLLOWUP_DASHBOARD_TOKEN": DASHBOARD_TOKEN,
        "FOLLOWUP_SECRET_KEY": LONG,
        "FOLLOWUP_TRUSTED_PROXIES": "",
    }
    import os

    process = subprocess.Popen(
        [sys.executable, "-m", "followup", "web", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "followup web did not start"
                time.sleep(0.2)
        response = httpx.get(
            f"http://127.0.0.1:{port}/dashboard?token={DASHBOARD_TOKEN}",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert response.status_code == 303
    assert not re.search(r";\s*secure", response.headers["set-cookie"], re.IGNORECASE)
    assert "Strict-Transport-Security" not in response.headers
