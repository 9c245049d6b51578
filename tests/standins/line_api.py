"""LINE Messaging API stand-in: ``POST /v2/bot/message/push`` with LINE's retry-key semantics.

A request whose ``X-Line-Retry-Key`` was already accepted gets 409 with ``x-line-accepted-request-id``
and is not executed again. Injected 500s happen before acceptance, so they record nothing, and the key
stays free for the retry.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from tests.standins import HttpStandIn, Reply, add_common_args, serve_until_signalled

DEFAULT_TOKEN = "line-test-token"
MAX_MESSAGES = 5
MAX_TEXT = 5000


class LineApi(HttpStandIn):
    def __init__(
        self,
        port: int | None = None,
        log_path: str | Path | None = None,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(port, log_path, host)
        self.token = token
        self.accepted: dict[str, str] = {}  # retry key -> request id that executed it

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.accepted.clear()

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        request_id = uuid.uuid4().hex
        rid = {"x-line-request-id": request_id}
        with self.lock:
            self.requests += 1
            if path != "/v2/bot/message/push":
                return 404, rid, {"message": "Not found"}
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, rid, {"message": "Authentication failed. Confirm that the access token is valid."}
            if self.fail_next_n > 0:
                self.fail_next_n -= 1
                return self.fail_status, rid, {"message": "An error occurred in the internal server"}
            retry_key = headers.get("x-line-retry-key")
            if retry_key is not None:
                try:
                    uuid.UUID(retry_key)
                except ValueError:
                    return 400, rid, {"message": "The value of the retry key is invalid"}
                if retry_key in self.accepted:
                    extra = {**rid, "x-line-accepted-request-id": self.accepted[retry_key]}
                    return 409, extra, {"message": "The retry key is already accepted"}
            problem = _invalid(body)
            if problem:
                return 400, rid, {"message": problem}
            if retry_key is not None:
                self.accepted[retry_key] = request_id
            to = str(body["to"])
            sent = [
                {"id": f"{request_id[:12]}{i}", "quoteToken": uuid.uuid4().hex}
                for i in range(len(body["messages"]))
            ]
            self.record(to, {"messages": body["messages"], "retry_key": retry_key, "request_id": request_id})
            return 200, rid, {"sentMessages": sent}


def _invalid(body: dict[str, Any]) -> str:
    to = body.get("to")
    if not isinstance(to, str) or not to.startswith("U"):
        return "The property, 'to', in the request body is invalid (line: -, column: -)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        return "Size must be between 1 and 5"
    for message in messages:
        if not isinstance(message, dict) or "type" not in message:
            return "The request body has 1 error(s)"
        if message["type"] == "text" and not 1 <= len(str(message.get("text", ""))) <= MAX_TEXT:
            return "Length must be between 0 and 5000"
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    api = LineApi(args.port or None, args.log, token=args.token, host=args.host)
    serve_until_signalled(api.start, api.stop, f"line api stand-in listening on {api.base_url}")


if __name__ == "__main__":
    main()
