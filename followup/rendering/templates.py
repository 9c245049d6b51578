"""Sandboxed rendering of HR-authored message templates.

HR writes the templates (``templates/messages/<locale>/<name>/``), so they are untrusted input: they run in
Jinja's immutable sandbox with ``StrictUndefined``, and every failure — a typo'd variable, a syntax error, an
attempt to reach Python internals — becomes one :class:`TemplateProblem` that names the file and line, so it
can be reported at config load instead of surfacing as a half-sent message.

One directory per message::

    subject.j2        one line (required)
    text.j2           plain text, also the Slack/LINE body (required)
    html.j2           email HTML, extends ``messages/<locale>/_layout.html.j2`` (optional)
    slack.json.j2     Slack blocks (optional; a default is built from the text)
    line.json.j2      LINE messages (optional; a default is built from the text)

JSON templates see the usual context plus ``rendered.subject`` / ``rendered.text`` and embed strings with
``| tojson``, which always yields a valid JSON string literal.
"""

from __future__ import annotations

import contextlib
import json
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from followup.rendering.quality import (
    TemplateMeta,
    find_holes,
    find_placeholders,
    mark_empty,
    read_meta,
    says_no_reply_needed,
)

__all__ = [
    "MessageTemplates",
    "RenderedMessage",
    "TemplateMeta",
    "TemplateProblem",
    "default_line_messages",
    "default_slack_blocks",
    "edate",
    "edatetime",
    "honorific",
    "jdate",
    "jdatetime",
    "sample_context",
]

DEFAULT_LOCALE = "ja"
JST = timezone(timedelta(hours=9), "JST")  # Japan has no DST: a fixed offset needs no tz database

LINE_TEXT_LIMIT = 5000  # LINE Messaging API: text message length
LINE_MAX_MESSAGES = 5  # LINE Messaging API: messages per push
LINE_ALT_TEXT_LIMIT = 400
LINE_BUTTONS_TEXT_LIMIT = 160
SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_MAX_BLOCKS = 50

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")
_WEEKDAYS_JA = "月火水木金土日"
_MAX_SEQUENCE = 100_000  # sandbox cap on `'x' * n` so a template cannot exhaust memory
_MAX_EXPONENT = 100

_LABELS: dict[str, dict[str, str]] = {
    "ja": {
        "survey_button": "アンケートに回答する",
        "line_survey_text": "アンケートへのご協力をお願いいたします(所要時間:約1分)",
        "line_survey_label": "回答する",
    },
    "en": {
        "survey_button": "Answer the survey",
        "line_survey_text": "Could you answer a short survey? It takes about 1 minute.",
        "line_survey_label": "Answer",
    },
}


@dataclass(frozen=True)
class RenderedMessage:
    """One touch rendered for every channel; channels pick the parts they can show."""

    subject: str
    text: str
    html: str | None
    slack_blocks: list[dict[str, Any]] | None
    line_messages: list[dict[str, Any]] | None


class TemplateProblem(Exception):
    """A template that cannot be rendered, located as ``PATH:LINE: message`` so HR can fix it."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


# --- filters -------------------------------------------------------------------------------------------


def _as_date(value: Any, filter_name: str) -> date:
    if isinstance(value, datetime):
        return _as_datetime(value, filter_name).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise TypeError(f"{filter_name}: expected a date, got {type(value).__name__} {value!r}")


def _as_datetime(value: Any, filter_name: str) -> datetime:
    """Aware datetimes are shown in Japan time; naive ones are taken to be Japan time already."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=JST) if value.tzinfo is None else value.astimezone(JST)
    raise TypeError(f"{filter_name}: expected a datetime, got {type(value).__name__} {value!r}")


def jdate(value: Any) -> str:
    """``2027年4月1日(木)`` — the way Japanese business mail writes a date."""
    d = _as_date(value, "jdate")
    return f"{d.year}年{d.month}月{d.day}日({_WEEKDAYS_JA[d.weekday()]})"


def jdatetime(value: Any) -> str:
    """``2026年8月20日(木) 18:00`` in Japan time."""
    dt = _as_datetime(value, "jdatetime")
    return f"{jdate(dt.date())} {dt:%H:%M}"


def edate(value: Any) -> str:
    """``Thursday, April 1, 2027`` for English templates."""
    d = _as_date(value, "edate")
    return f"{d:%A}, {d:%B} {d.day}, {d.year}"


def edatetime(value: Any) -> str:
    """``Thursday, August 20, 2026, 18:00 (JST)`` — the zone is stated because readers may be abroad."""
    dt = _as_datetime(value, "edatetime")
    return f"{edate(dt.date())}, {dt:%H:%M} (JST)"


def honorific(value: Any, suffix: str = "様") -> str:
    """``山田 花子`` → ``山田 花子 様``; a name that already carries an honorific is left alone."""
    name = str(value).strip()
    if not name:
        raise ValueError("honorific: empty name")
    if name.endswith(("様", "さま", "殿", "さん", suffix)):
        return name
    return f"{name} {suffix}"


# --- the sandbox ---------------------------------------------------------------------------------------


_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_HUGE_WIDTH = re.compile(r"[%:{][^}%a-zA-Z]*?\d{6,}")  # a width of 100,000 characters or more


class _HRSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus caps on ``*`` and ``**`` so a template cannot allocate gigabytes."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Width arguments (``'x'.ljust(10**8)``) are capped like repetition."""
        name = getattr(__obj, "__name__", "")
        widths = (a for a in (*args, *kwargs.values()) if isinstance(a, int))
        if (
            isinstance(getattr(__obj, "__self__", None), str)
            and name in _WIDTH_METHODS
            and any(w > _MAX_SEQUENCE for w in widths)
        ):
            raise SecurityError(f"str.{name} width larger than {_MAX_SEQUENCE}")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'{:>99999999}'.format(x)`` (the sandbox wraps str.format here): cap the width too."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _HUGE_WIDTH.search(value.__self__):

            def refuse(*_args: Any, **_kwargs: Any) -> str:
                raise SecurityError(f"format width larger than {_MAX_SEQUENCE}")

            return refuse
        return wrapped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str) and _HUGE_WIDTH.search(left):
            raise SecurityError(f"format width larger than {_MAX_SEQUENCE}")
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > _MAX_SEQUENCE
                ):
                    raise SecurityError(f"repetition would exceed {_MAX_SEQUENCE} items")
        return super().call_binop(context, operator, left, right)


def _is_html(template_name: str | None) -> bool:
    return template_name is not None and (
        template_name.endswith("/html.j2") or template_name.endswith(".html.j2")
    )


def _capped_filter(name: str, original: Any) -> Any:
    """A built-in filter whose width argument is capped (``'x'|center(10**8)`` would allocate 100 MB)."""

    def capped(value: Any, width: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > _MAX_SEQUENCE:
            raise SecurityError(f"{name} width larger than {_MAX_SEQUENCE}")
        return original(value, *args, **kwargs) if width is None else original(value, width, *args, **kwargs)

    return capped


def _make_env(root: Path, finalize: Callable[[Any], Any] | None = None) -> _HRSandbox:
    env = _HRSandbox(
        finalize=finalize,  # check-config marks empty interpolations (holes) with quality.mark_empty
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=_is_html,  # HTML escapes; subject, text and JSON (which uses | tojson) do not
        trim_blocks=True,  # `{% if %}` lines leave no blank line behind in text mail
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        jdate=jdate, jdatetime=jdatetime, edate=edate, edatetime=edatetime, honorific=honorific
    )
    for name in ("center", "indent", "truncate", "wordwrap"):
        env.filters[name] = _capped_filter(name, env.filters[name])
    return env


def _template_line(exc: BaseException, root: Path) -> tuple[Path | None, int | None]:
    """The innermost template frame of a render error; Jinja rewrites tracebacks to template lines."""
    found: tuple[Path | None, int | None] = (None, None)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith(".j2"):
            path = Path(filename)
            if path.is_relative_to(root):
                found = (path, lineno)
    return found


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"blocked by the template sandbox (SecurityError): {exc}"
    return f"{type(exc).__name__}: {exc}"


# --- templates -----------------------------------------------------------------------------------------


class MessageTemplates:
    """The message templates under ``root`` (the repo's ``templates/``) for one locale, falling back to ja."""

    def __init__(self, root: Path, locale: str = DEFAULT_LOCALE) -> None:
        if not _LOCALE_RE.match(locale):
            raise ValueError(f"invalid locale {locale!r}")
        self.root = Path(root).resolve()
        self.locale = locale
        self._env = _make_env(self.root)
        self._checking = False
        candidates = [locale, re.split(r"[-_]", locale)[0], DEFAULT_LOCALE]
        self._locales = list(dict.fromkeys(candidates))

    # which files ----------------------------------------------------------------------------------------

    def _resolve(self, name: str) -> tuple[str, str] | None:
        """(locale, jinja dir name) of the first locale that has this message, or None."""
        if not _NAME_RE.match(name):
            return None
        for loc in self._locales:
            rel = f"messages/{loc}/{name}"
            if (self.root / rel / "subject.j2").is_file():
                return loc, rel
        return None

    def exists(self, name: str) -> bool:
        return self._resolve(name) is not None

    def names(self) -> list[str]:
        found: set[str] = set()
        for loc in self._locales:
            base = self.root / "messages" / loc
            if base.is_dir():
                found.update(p.name for p in base.iterdir() if self._resolve(p.name) is not None)
        return sorted(found)

    # rendering ------------------------------------------------------------------------------------------

    def meta(self, name: str) -> TemplateMeta:
        """The template's flags from ``meta.yaml`` (essential, expects_reply, …); defaults when absent."""
        resolved = self._resolve(name)
        if resolved is None:
            return TemplateMeta()
        path = self.root / resolved[1] / "meta.yaml"
        try:
            return read_meta(path)
        except ValueError as exc:
            raise TemplateProblem(path, None, str(exc).removeprefix(f"{path}: ")) from None

    def _render_file(self, template_name: str, context: Mapping[str, Any]) -> str:
        """Render one file; every failure becomes a TemplateProblem at the innermost template line."""
        path = self.root / template_name
        env = self._hole_env if self._checking else self._env
        try:
            return env.get_template(template_name).render(dict(context))
        except TemplateSyntaxError as exc:
            source = Path(exc.filename) if exc.filename else path
            raise TemplateProblem(source, exc.lineno, f"syntax error: {exc.message}") from exc
        except Exception as exc:  # HR-authored code: any failure is the template's, reported where it is
            where, line = _template_line(exc, self.root)
            raise TemplateProblem(where or path, line, _describe(exc)) from exc

    def _optional(self, rel: str, filename: str) -> str | None:
        return f"{rel}/{filename}" if (self.root / rel / filename).is_file() else None

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedMessage:
        resolved = self._resolve(name)
        if resolved is None:
            where = self.root / "messages" / self.locale / name
            raise TemplateProblem(where, None, f"no message template {name!r} (needs subject.j2 and text.j2)")
        loc, rel = resolved

        subject_name = f"{rel}/subject.j2"
        subject = self._render_file(subject_name, context).strip()
        if not subject:
            raise TemplateProblem(self.root / subject_name, None, "subject is empty")
        if "\n" in subject or "\r" in subject:
            raise TemplateProblem(self.root / subject_name, None, "subject must be a single line")

        text_name = f"{rel}/text.j2"
        if not (self.root / text_name).is_file():
            raise TemplateProblem(self.root / text_name, None, "text.j2 is missing")
        text = _tidy_text(self._render_file(text_name, context))

        html_name = self._optional(rel, "html.j2")
        html = self._render_file(html_name, context) if html_name else None
        for part_name, part in ((subject_name, subject), (text_name, text), (html_name, html)):
            placeholders = find_placeholders(part or "")
            if placeholders and part_name:
                raise TemplateProblem(
                    self.root / part_name,
                    None,
                    f"placeholder text left in the message: 「{placeholders[0]}」 — "
                    "write the real content (or supply it under content: in the config) before sending",
                )

        json_context = {**context, "rendered": {"subject": subject, "text": text}}
        survey_url = context.get("survey_url")
        labels = _LABELS.get(loc, _LABELS[DEFAULT_LOCALE])

        slack_name = self._optional(rel, "slack.json.j2")
        if slack_name:
            slack_blocks = self._render_json(slack_name, json_context, "blocks", _check_slack)
        else:
            slack_blocks = default_slack_blocks(subject, text, survey_url, labels["survey_button"])

        line_name = self._optional(rel, "line.json.j2")
        if line_name:
            line_messages = self._render_json(line_name, json_context, "messages", _check_line)
        else:
            line_messages = default_line_messages(subject, text, survey_url, labels)

        return RenderedMessage(subject, text, html, slack_blocks, line_messages)

    def _render_json(
        self,
        template_name: str,
        context: Mapping[str, Any],
        key: str,
        validate: Callable[[list[dict[str, Any]]], str | None],
    ) -> list[dict[str, Any]]:
        """Parse a JSON template as a list (or ``{key: [...]}``) of objects and check the channel's limits."""
        path = self.root / template_name
        raw = self._render_file(template_name, context)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TemplateProblem(
                path, None, f"output is not valid JSON ({exc}); embed strings with | tojson"
            ) from exc
        if isinstance(data, dict) and key in data:
            data = data[key]
        if not isinstance(data, list) or not all(isinstance(item, dict) and "type" in item for item in data):
            raise TemplateProblem(
                path, None, f"expected a list of objects with a 'type' (or {{{key!r}: [...]}})"
            )
        problem = validate(data)
        if problem:
            raise TemplateProblem(path, None, problem)
        return data

    @property
    def _hole_env(self) -> _HRSandbox:
        env = self.__dict__.get("_hole_env_cache")
        if env is None:
            env = _make_env(self.root, finalize=mark_empty)
            self.__dict__["_hole_env_cache"] = env
        return env

    def holes(self, name: str, context: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(part, sentence) for each empty interpolation or empty bracket pair in the rendered message."""
        self._checking = True
        try:
            rendered = self.render(name, context)
        finally:
            self._checking = False
        found = [("subject", line) for line in find_holes(rendered.subject)]
        found += [("text", line) for line in find_holes(rendered.text)]
        found += [("html", line) for line in find_holes(rendered.html or "", html=True)]
        return found

    def check_sparse(self, name: str, contexts: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Render against every (label, context) — sparse holders: no mentor, no department, LINE only,
        mid-career, an October start — and refuse holes, so each message reads naturally for anyone.
        Also: a message that says 「ご返信は不要です」 must be marked ``expects_reply: false``."""
        resolved = self._resolve(name)
        folder = self.root / (resolved[1] if resolved else name)
        meta = self.meta(name)
        for label, context in contexts:
            for part, line in self.holes(name, context):
                raise TemplateProblem(
                    folder / f"{part}.j2" if part != "html" else folder / "html.j2",
                    None,
                    f"empty value in 「{line}」 for the sample holder {label}: "
                    "guard it with {% if … %} or write the sentence without it",
                )
            text = self.render(name, context).text
            if meta.expects_reply and says_no_reply_needed(text):
                raise TemplateProblem(
                    folder / "meta.yaml",
                    None,
                    "the message says 「ご返信は不要です」: add 'expects_reply: false' so silence after it "
                    "does not count toward 無反応",
                )

    def check(self, name: str) -> None:
        """Render sample data with and without the optional links, so mistakes show at config load."""
        self.meta(name)
        full = sample_context()
        with_links = self.render(name, full)
        without = self.render(name, {**full, "survey_url": None, "unsubscribe_url": None})
        for part in ("subject", "text", "html"):
            if (getattr(without, part) or "").count("None") > (getattr(with_links, part) or "").count("None"):
                resolved = self._resolve(name)
                folder = self.root / (resolved[1] if resolved else name)
                raise TemplateProblem(
                    folder / f"{part}.j2",
                    None,
                    "renders 'None' when survey_url/unsubscribe_url are unset: guard them with {% if %}",
                )


def _tidy_text(text: str) -> str:
    """Drop trailing spaces and blank-line runs that conditional blocks leave behind."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# --- default channel payloads --------------------------------------------------------------------------


def _chunks(text: str, limit: int) -> list[str]:
    """Split at paragraph, then line, boundaries so no piece exceeds ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for para in text.split("\n"):
        while len(para) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(para[:limit])
            para = para[limit:]
        candidate = f"{current}\n{para}" if current else para
        if len(candidate) > limit:
            pieces.append(current)
            current = para
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_slack_blocks(
    subject: str, text: str, survey_url: str | None, button_label: str = _LABELS["ja"]["survey_button"]
) -> list[dict[str, Any]]:
    """Header + mrkdwn sections (Slack caps a section at 3000 chars) + a survey button when there is one."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(subject, SLACK_HEADER_LIMIT), "emoji": True},
        }
    ]
    room = SLACK_MAX_BLOCKS - len(blocks) - (1 if survey_url else 0)
    sections = _chunks(_slack_escape(text), SLACK_SECTION_LIMIT)[:room]
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections)
    if survey_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_survey",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": button_label, "emoji": True},
                        "url": survey_url,
                    }
                ],
            }
        )
    return blocks


def default_line_messages(
    subject: str, text: str, survey_url: str | None, labels: Mapping[str, str] = _LABELS["ja"]
) -> list[dict[str, Any]]:
    """One text message (LINE caps it at 5000 chars) and, with a survey, a buttons template linking to it."""
    body = _truncate(f"{subject}\n\n{text}".strip(), LINE_TEXT_LIMIT)
    messages: list[dict[str, Any]] = [{"type": "text", "text": body}]
    if survey_url:
        messages.append(
            {
                "type": "template",
                "altText": _truncate(f"{labels['line_survey_text']} {survey_url}", LINE_ALT_TEXT_LIMIT),
                "template": {
                    "type": "buttons",
                    "text": _truncate(labels["line_survey_text"], LINE_BUTTONS_TEXT_LIMIT),
                    "actions": [{"type": "uri", "label": labels["line_survey_label"], "uri": survey_url}],
                },
            }
        )
    return messages


def _check_slack(blocks: list[dict[str, Any]]) -> str | None:
    if len(blocks) > SLACK_MAX_BLOCKS:
        return f"Slack allows at most {SLACK_MAX_BLOCKS} blocks, got {len(blocks)}"
    return None


def _check_line(messages: list[dict[str, Any]]) -> str | None:
    if not 1 <= len(messages) <= LINE_MAX_MESSAGES:
        return f"LINE sends 1 to {LINE_MAX_MESSAGES} messages at once, got {len(messages)}"
    for i, message in enumerate(messages):
        if message["type"] == "text" and len(str(message.get("text", ""))) > LINE_TEXT_LIMIT:
            return f"LINE message {i + 1}: text longer than {LINE_TEXT_LIMIT} characters"
    return None


# --- sample data ---------------------------------------------------------------------------------------


def sample_context(company_name: str = "株式会社サンプル") -> dict[str, Any]:
    """A complete, realistic context: what ``check()`` renders against and what the docs show HR."""
    return {
        "holder": {
            "external_id": "NG2027-0042",
            "name": "山田 花子",
            "family_name": "山田",
            "email": "hanako.yamada@example.ac.jp",
            "department": "営業部",
            "track": "new_grad",
            "offer_date": date(2026, 6, 1),
            "start_date": date(2027, 4, 1),
        },
        "company": {
            "name": company_name,
            "president": "佐藤 一郎",
            "president_family_name": "佐藤",
            "hr_name": "人事部 採用担当 鈴木",
            "hr_email": "saiyo@sample.co.jp",
            "hr_phone": "03-1234-5678",
        },
        "mentor": {
            "name": "田中 健太",
            "email": "kenta.tanaka@sample.co.jp",
            "department": "営業部 第一営業課",
        },
        "phase": {"name": "steady", "label": "安定期"},
        "first_day": {
            "time": "9:00",
            "place": "本社1階 受付",
            "reception": "「入社手続きで参りました」とお伝えください",
            "dress_code": "スーツでお越しください(2日目以降の服装は、当日ご案内いたします)",
            "bring": ["筆記用具", "印鑑(朱肉を使うもの)", "本人確認書類(運転免許証など)"],
            "schedule": [
                {"time": "9:00", "what": "受付・入社手続き"},
                {"time": "10:00", "what": "オリエンテーション(就業規則・社内制度のご説明)"},
                {"time": "17:30", "what": "終了予定"},
            ],
            "lunch": "初日の昼食は、こちらでご用意いたします。",
        },
        "content": {
            "month": "2026-08",
            "intro": "",
            "topics": [
                {"title": "社内報8月号", "body": "入社2年目の社員による座談会を特集しました。"},
                {"title": "", "body": "8月13日・14日は夏季休業です。"},
            ],
        },
        "days_until_start": 224,  # 2026-08-20 → 2027-04-01
        "survey_url": "https://followup.example.jp/s/NG2027-0042.c2FtcGxl.3f9a1b",
        "unsubscribe_url": "https://followup.example.jp/u/NG2027-0042.c2FtcGxl.7d2e4c",
        "event": {
            "title": "先輩社員とのオンライン座談会",
            "starts_at": datetime(2026, 8, 20, 18, 0, tzinfo=JST),
            "place": "オンライン(Zoom)",
            "url": "https://zoom.us/j/1234567890",
            "deadline": date(2026, 8, 13),
        },
    }
