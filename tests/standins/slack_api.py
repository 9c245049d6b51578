"""Slack Web API stand-in: conversations.open, chat.postMessage (with ``metadata``) and
conversations.history (newest first; metadata only with ``include_all_metadata``), as slack-sdk calls them;
for a group channel (an id starting with ``C``), conversations.invite (``members``) and chat.postMessage.
``drop_next(n)`` posts the next ``n`` messages but drops the line before answering (an in-doubt send).

Like Slack, it answers HTTP 200 with ``{"ok": false, "error": ...}`` for API errors and HTTP 429 with
``Retry-After`` when rate limiting. Base URL for ``WebClient``: ``api_url`` (ends in ``/api/``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

from tests.standins import DROP, HttpStandIn, Reply, add_common_args, serve_until_signalled

DEFAULT_TOKEN = "xoxb-test-token"


class SlackApi(HttpStandIn):
    def __init__(
        self,
        port: int | None = None,
        log_path: str | Path | None = None,
        token: str = DEFAULT_TOKEN,
        known_users: set[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(port, log_path, host)
        self.token = token
        self.known_users = known_users  # None: every id starting with "U" exists
        self.rate_limit_next_n = 0
        self.rate_limit_forever = False
        self.retry_after: str = "1"
        self.drop_next_n = 0
        self.history: dict[str, list[dict[str, Any]]] = {}  # DM channel -> messages, oldest first
        self.members: dict[str, list[str]] = {}  # group channel (C…) -> user ids, in invitation order
        self._seq = itertools.count(1)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def rate_limit(self, n: int, retry_after: int | float | str = 1, forever: bool = False) -> None:
        """Answer the next ``n`` API calls (or all, ``forever``) with 429 and ``Retry-After``."""
        with self.lock:
            self.rate_limit_next_n, self.retry_after = n, str(retry_after)
            self.rate_limit_forever = forever

    def drop_next(self, n: int) -> None:
        """Post the next ``n`` messages, then close the connection without an answer."""
        with self.lock:
            self.drop_next_n = n

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.rate_limit_next_n = 0
            self.rate_limit_forever = False
            self.drop_next_n = 0
            self.history.clear()
            self.members.clear()

    def control(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action == "rate_limit":
            forever = bool(params.get("forever"))
            self.rate_limit(int(params.get("n", 1)), params.get("retry_after", 1), forever)
            return self.state()
        if action == "drop":
            self.drop_next(int(params.get("n", 1)))
            return self.state()
        if action == "users":
            self.known_users = set(params["users"]) if params.get("users") is not None else None
            return self.state()
        return super().control(action, params)

    def _user_exists(self, user: str) -> bool:
        return user in self.known_users if self.known_users is not None else user.startswith("U")

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests += 1
            if self.rate_limit_next_n > 0 or self.rate_limit_forever:
                self.rate_limit_next_n = max(0, self.rate_limit_next_n - 1)
                return 429, {"Retry-After": self.retry_after}, {"ok": False, "error": "ratelimited"}
            if self.fail_next_n > 0:
                self.fail_next_n -= 1
                return self.fail_status, {}, {"ok": False, "error": "internal_error"}
            auth = headers.get("authorization", "")
            if not auth:
                return 200, {}, {"ok": False, "error": "not_authed"}
            if auth != f"Bearer {self.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            method = path.removeprefix("/api/")
            if method == "conversations.open":
                return self._open(body)
            if method == "chat.postMessage":
                return self._post(body)
            if method == "conversations.history":
                return self._history(body)
            if method == "conversations.invite":
                return self._invite(body)
            return 404, {}, {"ok": False, "error": "unknown_method"}

    def _open(self, body: dict[str, Any]) -> Reply:
        users = str(body.get("users", ""))
        if not users or "," in users:
            return 200, {}, {"ok": False, "error": "invalid_arguments"}
        if not self._user_exists(users):
            return 200, {}, {"ok": False, "error": "user_not_found"}
        return 200, {}, {"ok": True, "channel": {"id": "D" + users}}

    def _invite(self, body: dict[str, Any]) -> Reply:
        """Like Slack: the users join at once; one already in the channel fails the call."""
        channel = str(body.get("channel", ""))
        users = [u for u in str(body.get("users", "")).split(",") if u]
        if not channel.startswith("C"):
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if not users:
            return 200, {}, {"ok": False, "error": "no_user"}
        if any(not self._user_exists(u) for u in users):
            return 200, {}, {"ok": False, "error": "user_not_found"}
        present = self.members.setdefault(channel, [])
        if any(u in present for u in users):
            return 200, {}, {"ok": False, "error": "already_in_channel"}
        present.extend(users)
        self.record(channel, {"channel": channel, "invited": users})
        return 200, {}, {"ok": True, "channel": {"id": channel}}

    def _post(self, body: dict[str, Any]) -> Reply:
        channel = str(body.get("channel", ""))
        if channel.startswith("C"):  # a group channel: the bot is in it
            ts = f"{int(time.time())}.{next(self._seq):06d}"
            message = {"type": "message", "text": body.get("text", ""), "ts": ts}
            self.history.setdefault(channel, []).append(message)
            self.record(channel, {"channel": channel, "ts": ts, "text": message["text"]})
            return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message}
        user = channel[1:] if channel.startswith("D") else ""
        if not user or not self._user_exists(user):
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return 200, {}, {"ok": False, "error": "no_text"}
        ts = f"{int(time.time())}.{next(self._seq):06d}"
        message = {"type": "message", "text": body.get("text", ""), "blocks": body.get("blocks"), "ts": ts}
        metadata = body.get("metadata")
        if isinstance(metadata, str):  # form-encoded callers send it as JSON text
            metadata = json.loads(metadata)
        if metadata is not None:
            if not isinstance(metadata, dict) or not metadata.get("event_type"):
                return 200, {}, {"ok": False, "error": "invalid_metadata_format"}
            message["metadata"] = metadata
        self.history.setdefault(channel, []).append(message)
        self.record(
            user,
            {
                "channel": channel,
                "ts": ts,
                "text": message["text"],
                "blocks": message["blocks"],
                "metadata": metadata,
            },
        )
        if self.drop_next_n > 0:
            self.drop_next_n -= 1
            return DROP, {}, {}
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _history(self, body: dict[str, Any]) -> Reply:
        channel = str(body.get("channel", ""))
        user = channel[1:] if channel.startswith("D") else ""
        if not user or not self._user_exists(user):
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = max(1, min(int(body.get("limit") or 100), 999))
        start = int(body.get("cursor") or 0)
        newest_first = list(reversed(self.history.get(channel, [])))
        page = newest_first[start : start + limit]
        messages = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(newest_first)
        return (
            200,
            {},
            {
                "ok": True,
                "messages": messages,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            },
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--users", default=None, help="comma-separated known user ids (default: any U…)")
    args = parser.parse_args(argv)
    users = set(args.users.split(",")) if args.users else None
    api = SlackApi(args.port or None, args.log, token=args.token, known_users=users, host=args.host)
    serve_until_signalled(api.start, api.stop, f"slack api stand-in listening on {api.api_url}")


if __name__ == "__main__":
    main()
