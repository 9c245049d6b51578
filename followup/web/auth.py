"""HR sign-in for the dashboard: expiring, rotating session cookies, a guess limit, trusted proxies.

- **Session cookie**: ``itsdangerous.TimestampSigner`` over ``issued-at . session id . token
  fingerprint``, with a key derived from ``FOLLOWUP_SECRET_KEY``. It is refused after
  ``SESSION_IDLE`` (8 h) without use and ``SESSION_ABSOLUTE`` (24 h) after sign-in; in use it is re-signed
  every ``SESSION_RENEW`` (5 min), so an active session keeps going and a stolen, idle one dies.
  Changing ``FOLLOWUP_DASHBOARD_TOKEN`` ends every session (the fingerprint no longer matches), and
  signing out revokes the session id in this process.
- **Guess limit**: ``MAX_FAILURES`` (10) wrong tokens per client per ``FAILURE_WINDOW`` (60 s), then
  429 with ``Retry-After`` for that client, whatever it presents, until the window has passed.
- **Trusted proxies** (``FOLLOWUP_TRUSTED_PROXIES``: addresses or networks, comma-separated): only a
  peer in that list may say, through ``X-Forwarded-For`` / ``X-Forwarded-Proto``, who the client is
  and whether it spoke https. ``Secure`` cookies and HSTS follow that scheme.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

COOKIE = "followup_dashboard"
SESSION_IDLE = 8 * 3600
SESSION_ABSOLUTE = 24 * 3600
SESSION_RENEW = 300
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(value: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; an entry that is not an address is a ValueError."""
    networks: list[Network] = []
    for entry in (part.strip() for part in value.split(",")):
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


def is_trusted(address: str | None, trusted: tuple[Network, ...]) -> bool:
    if not address or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_client(
    peer: str | None, headers: dict[str, str], trusted: tuple[Network, ...]
) -> tuple[str | None, str | None]:
    """(client address, scheme) as the trusted proxy chain reports them; (peer, None) otherwise.

    ``X-Forwarded-For`` is read from the right: each hop a trusted proxy added is skipped, and the first
    address a trusted proxy did not add is the client (what a client writes itself stays on the left).
    """
    if not is_trusted(peer, trusted):
        return peer, None
    client = peer
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        client = hop
        if not is_trusted(hop, trusted):
            break
    proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return client, proto if proto in ("http", "https") else None


@dataclass
class GuessLimiter:
    """Failed sign-ins per client in a sliding window (in this process)."""

    limit: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may try again, or None when it may try now."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if len(times) < self.limit:
                if not times:
                    self._failures.pop(client, None)
                return None
            return max(1, int(times[0] + self.window - now + 0.999))

    def fail(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # many clients: forget the oldest rather than grow
                self._failures.pop(next(iter(self._failures)))


@dataclass
class Sessions:
    """Issues and checks dashboard session cookies; ``clock`` is wall time in seconds (tests move it)."""

    secret: str
    clock: Callable[[], float] = time.time
    _revoked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _signer(self) -> TimestampSigner:
        key = hmac.new(self.secret.encode(), b"followup.dashboard-session", hashlib.sha256).hexdigest()
        signer = TimestampSigner(key, salt="followup.dashboard")
        signer.get_timestamp = lambda: int(self.clock())  # type: ignore[method-assign]
        return signer

    def _fingerprint(self, token: str) -> str:
        return hmac.new(
            self.secret.encode(), b"dashboard-token:" + token.encode(), hashlib.sha256
        ).hexdigest()[:32]

    def issue(self, token: str, issued_at: int | None = None, session_id: str | None = None) -> str:
        issued = int(self.clock()) if issued_at is None else issued_at
        sid = session_id or secrets.token_urlsafe(16)
        value = f"{issued}.{sid}.{self._fingerprint(token)}"
        return self._signer().sign(value).decode("ascii")

    def check(self, cookie: str, token: str) -> tuple[str, str | None] | None:
        """(session id, a renewed cookie or None) for a valid cookie; None when it is not valid."""
        if len(cookie) > 512:
            return None
        signer = self._signer()
        try:
            value, signed_at = signer.unsign(cookie, max_age=SESSION_IDLE, return_timestamp=True)
        except (SignatureExpired, BadSignature):
            return None
        try:
            issued_text, sid, fingerprint = value.decode("ascii").split(".")
            issued = int(issued_text)
        except (UnicodeDecodeError, ValueError):
            return None
        now = self.clock()
        if not hmac.compare_digest(fingerprint, self._fingerprint(token)):
            return None
        if now - issued > SESSION_ABSOLUTE or self.is_revoked(sid):
            return None
        renewed = None
        if now - signed_at.timestamp() >= SESSION_RENEW:
            renewed = self.issue(token, issued_at=issued, session_id=sid)
        return sid, renewed

    def revoke(self, cookie: str) -> None:
        try:
            value = self._signer().unsign(cookie, max_age=SESSION_IDLE)
            sid = value.decode("ascii").split(".")[1]
        except (SignatureExpired, BadSignature, UnicodeDecodeError, IndexError):
            return
        with self._lock:
            now = self.clock()
            self._revoked = {s: t for s, t in self._revoked.items() if t > now - SESSION_ABSOLUTE}
            self._revoked[sid] = now

    def is_revoked(self, sid: str) -> bool:
        with self._lock:
            return sid in self._revoked


@dataclass
class DashboardAuth:
    """What the dashboard routes share: the sessions, the guess limiter and the trusted proxies."""

    sessions: Sessions
    limiter: GuessLimiter
    trusted: tuple[Network, ...]
    mentors: MentorSessions | None = None


@dataclass(frozen=True)
class Viewer:
    """Who is looking: HR (everything) or a mentor/executive (only holders whose ``mentor_email`` is
    theirs). ``session_id`` is None for API callers with a bearer token; they get no CSRF token, so
    they cannot post the workspace's forms."""

    kind: str  # "hr" | "mentor"
    email: str | None = None
    session_id: str | None = None

    @property
    def scope(self) -> str | None:
        """The mentor scope of every query this viewer makes (None: HR sees everyone)."""
        return self.email if self.kind == "mentor" else None

    @property
    def actor(self) -> str:
        """The audit log's actor: ``web:hr`` or ``web:mentor:EMAIL``."""
        return "web:hr" if self.kind == "hr" else f"web:mentor:{self.email}"


def csrf_token(secret: str, session_id: str) -> str:
    """The form token of one session: an HMAC of its id, so it needs no storage and dies with it."""
    return hmac.new(secret.encode(), b"followup.csrf:" + session_id.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(secret: str, session_id: str | None, presented: str | None) -> bool:
    if not session_id or not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, session_id), presented)


MENTOR_COOKIE = "followup_mentor"
MENTOR_LINK_MAX_AGE = 14 * 86400  # a sign-in link in a mail works for two weeks


@dataclass
class MentorSessions(Sessions):
    """A mentor's session cookie: like HR's, but it names the mentor (their email, base64) instead of
    fingerprinting the dashboard token, under its own key and salt."""

    def _signer(self) -> TimestampSigner:
        key = hmac.new(self.secret.encode(), b"followup.mentor-session", hashlib.sha256).hexdigest()
        signer = TimestampSigner(key, salt="followup.mentor")
        signer.get_timestamp = lambda: int(self.clock())  # type: ignore[method-assign]
        return signer

    def issue(self, token: str, issued_at: int | None = None, session_id: str | None = None) -> str:
        """``token`` is the mentor's email here."""
        issued = int(self.clock()) if issued_at is None else issued_at
        sid = session_id or secrets.token_urlsafe(16)
        name = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        return self._signer().sign(f"{issued}.{sid}.{name}").decode("ascii")

    def mentor_of(self, cookie: str) -> tuple[str, str, str | None] | None:
        """(email, session id, renewed cookie or None) for a valid mentor cookie."""
        if len(cookie) > 1024:
            return None
        try:
            value, signed_at = self._signer().unsign(cookie, max_age=SESSION_IDLE, return_timestamp=True)
            issued_text, sid, name = value.decode("ascii").split(".")
            issued = int(issued_text)
            email = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (SignatureExpired, BadSignature, UnicodeDecodeError, ValueError):
            return None
        now = self.clock()
        if now - issued > SESSION_ABSOLUTE or self.is_revoked(sid):
            return None
        renewed = None
        if now - signed_at.timestamp() >= SESSION_RENEW:
            renewed = self.issue(email, issued_at=issued, session_id=sid)
        return email, sid, renewed
