"""Sandboxed rendering of HR-authored message templates.

HR writes the templates (``templates/messages/<locale>/<name>/``), so they are untrusted input: they run in
Jinja's immutable sandbox with ``StrictUndefined``, and every failure — a typo'd variable, a syntax error, an
attempt to reach Python internals — becomes one :class:`TemplateProblem` that names the file and line, so it
can be reported at config load instead of surfacing as a half-sent message.

One directory per message::

    subject.j2        one line (required)
    text.j2           the email's plain text (required)
    short.j2          the short form LINE and Slack send instead: the addressee, 2–5 lines, one
                      ``[ラベル](URL)`` button (required for a message sent on a chat channel;
                      see ``followup.rendering.forms``)
    html.j2           email HTML, extends ``messages/<locale>/_layout.html.j2`` (optional)
    <channel>.json.j2 the channel's rich parts, e.g. slack.json.j2 (Slack blocks), line.json.j2 (LINE
                      messages); optional: the channel builds a default from the text

JSON templates see the usual context plus ``rendered.subject`` / ``rendered.text`` / ``rendered.short``
(None without ``short.j2``) and embed strings with ``| tojson``, which always yields a valid JSON string
literal.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
    meta,
    nodes,
    pass_eval_context,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateNotFound
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from followup.channels import channel_classes
from followup.channels.base import Channel, Link
from followup.rendering.forms import SHORT_FILE, ShortForm, parse_short, short_problem
from followup.rendering.quality import (
    HOLE,
    HOLE_SHOWN,
    TemplateMeta,
    find_holes,
    find_placeholders,
    mark_empty,
    read_meta,
    says_no_reply_needed,
)
from followup.vocab import WEEKDAYS_JA

__all__ = [
    "MessageTemplates",
    "RenderedMessage",
    "TemplateMeta",
    "TemplateProblem",
    "edate",
    "edatetime",
    "honorific",
    "jdate",
    "jdatetime",
    "sample_context",
]

DEFAULT_LOCALE = "ja"
JST = timezone(timedelta(hours=9), "JST")  # Japan has no DST: a fixed offset needs no tz database

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")
_MAX_SEQUENCE = 100_000  # sandbox cap on `'x' * n` so a template cannot exhaust memory
_MAX_EXPONENT = 100

_LABELS: dict[str, dict[str, str]] = {
    "ja": {
        "survey_button": "アンケートに回答する",
        "line_survey_text": "アンケートへのご協力をお願いいたします(所要時間:約1分)",
        "line_survey_label": "回答する",
        "chat_opt_out": (
            "今後のフォローのご案内の配信停止は<{url}|こちら>(入社手続きに必要なご連絡は、停止後もお送りします)"
        ),
    },
    "en": {
        "survey_button": "Answer the survey",
        "line_survey_text": "Could you answer a short survey? It takes about 1 minute.",
        "line_survey_label": "Answer",
        "chat_opt_out": (
            "To stop these follow-up messages, <{url}|opt out here> (joining paperwork still reaches you)."
        ),
    },
}


@dataclass(frozen=True)
class RenderedMessage:
    """One touch rendered for every channel; ``parts[name]`` is channel ``name``'s rich parts (or None).

    ``short`` is the short form chat channels send (None without ``short.j2``), ``link`` its one button;
    ``short_path`` is where ``short.j2`` is (or should be); ``authored`` the channels whose parts come
    from their own ``<name>.json.j2``."""

    subject: str
    text: str
    html: str | None
    parts: dict[str, list[dict[str, Any]] | None]
    short: str | None = None
    link: Link | None = None
    short_path: Path | None = None
    authored: frozenset[str] = frozenset()

    def text_for(self, channel: type[Channel]) -> str:
        """The body ``channel`` sends: the short form on a chat channel (refused when there is none and
        the channel has no ``<name>.json.j2`` of its own), the email text elsewhere."""
        if not channel.short_form:
            return self.text
        if self.short is not None:
            return self.short
        if channel.name in self.authored:
            return self.text
        raise TemplateProblem(
            self.short_path or Path(SHORT_FILE),
            None,
            f"{SHORT_FILE} is missing: {channel.label} sends the short form (the addressee, 2–5 lines, "
            "one [ラベル](URL) button), not the email text; write it beside text.j2",
        )


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
    return f"{d.year}年{d.month}月{d.day}日({WEEKDAYS_JA[d.weekday()]})"


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
MAX_OUTPUT = 200_000  # characters one template file may render (a long e-mail is ~10,000)
MAX_RENDER_SECONDS = 2.0  # wall time one template file may take to render
MAX_RANGE = 10_000  # range() items; the sandbox's own cap is 100,000
_REMOVED_GLOBALS = ("lipsum",)  # lipsum(10**7) builds megabytes of text; messages never need it


class _Budget(threading.local):
    """The deadline of the render running in this thread (None: no render is running)."""

    deadline: float | None = None


_budget = _Budget()


def _check_time() -> None:
    deadline = _budget.deadline
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _check_size(value: Any, what: str) -> Any:
    if _size(value) > _MAX_SEQUENCE:
        raise SecurityError(f"{what} would exceed {_MAX_SEQUENCE} characters or items")
    return value


def _replace_size(text: Any, old: Any, new: Any, count: Any = None) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _join_size(items: Any, separator: Any = "") -> int:
    if not isinstance(items, list | tuple) or not isinstance(separator, str):
        return 0
    if len(items) > _MAX_SEQUENCE:
        return len(items)
    return sum(len(item) if isinstance(item, str) else 20 for item in items) + len(separator) * len(items)


def _budgeted(iterable: Any) -> Any:
    """Every ``{% for %}`` loop runs through this: nested loops cannot outlast the render's time budget."""
    for index, item in enumerate(iterable):
        if not index & 0xFF:
            _check_time()
        yield item


def _capped_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range() of more than {MAX_RANGE} items")
    return rng


class _CappedCodeGenerator(CodeGenerator):
    """``a ~ b`` (string concatenation) is size-checked too: the sandbox does not intercept it."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class _HRSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus caps on ``*``, ``**``, ``+``, ``~``, widths, ``replace`` and ``join``
    so a template cannot allocate gigabytes, and a time budget checked in every call, attribute access
    and loop iteration so it cannot spin for minutes. Output is counted as it streams (``render``)."""

    intercepted_binops = frozenset(["*", "**", "%", "+"])
    code_generator_class = _CappedCodeGenerator

    def checked_concat(self, value: Any) -> Any:
        return _check_size(value, "string concatenation (~)")

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every loop's iterable goes through ``_budgeted`` (a time check per 256 iterations)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("budgeted_iter", lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        return tree

    @staticmethod
    def budgeted_iter(iterable: Any) -> Any:
        return _budgeted(iterable)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Width arguments (``'x'.ljust(10**8)``) are capped like repetition; so are replace and join."""
        _check_time()
        name = getattr(__obj, "__name__", "")
        owner = getattr(__obj, "__self__", None)
        widths = (a for a in (*args, *kwargs.values()) if isinstance(a, int))
        if isinstance(owner, str):
            if name in _WIDTH_METHODS and any(w > _MAX_SEQUENCE for w in widths):
                raise SecurityError(f"str.{name} width larger than {_MAX_SEQUENCE}")
            if name == "replace" and _replace_size(owner, *args[:3]) > _MAX_SEQUENCE:
                raise SecurityError(f"str.replace would exceed {_MAX_SEQUENCE} characters")
            if name == "join" and args and _join_size(args[0], owner) > _MAX_SEQUENCE:
                raise SecurityError(f"str.join would exceed {_MAX_SEQUENCE} characters")
        result = super().call(__context, __obj, *args, **kwargs)
        return _check_size(result, f"the result of {name or 'a call'}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'{:>99999999}'.format(x)`` (the sandbox wraps str.format here): cap the width too."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _HUGE_WIDTH.search(value.__self__):

            def refuse(*_args: Any, **_kwargs: Any) -> str:
                raise SecurityError(f"format width larger than {_MAX_SEQUENCE}")

            return refuse
        return wrapped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
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
        if operator == "+" and _size(left) + _size(right) > _MAX_SEQUENCE:
            raise SecurityError(f"concatenation (+) would exceed {_MAX_SEQUENCE} items")
        return super().call_binop(context, operator, left, right)


def _bounded_render(template: Any, context: dict[str, Any]) -> str:
    """Render through ``generate()``, counting characters and time, so no render is unbounded."""
    outer = _budget.deadline
    _budget.deadline = time.monotonic() + MAX_RENDER_SECONDS if outer is None else outer
    try:
        parts: list[str] = []
        total = 0
        for chunk in template.generate(context):
            total += len(chunk)
            if total > MAX_OUTPUT:
                raise SecurityError(f"output longer than {MAX_OUTPUT} characters")
            _check_time()
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.deadline = outer


def _guarded_filter(name: str, original: Any) -> Any:
    """Every filter checks the time budget and the size of what it returns; ``replace`` and ``join``
    check the size before they build it."""

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        values = [a for a in args if not isinstance(a, Context | Environment | EvalContext)]
        if name == "replace" and len(values) >= 3 and _replace_size(*values[:4]) > _MAX_SEQUENCE:
            raise SecurityError(f"replace would exceed {_MAX_SEQUENCE} characters")
        if name == "join" and values:
            separator = values[1] if len(values) > 1 else kwargs.get("d", "")
            items = values[0]
            if isinstance(items, list | tuple) and _join_size(items, separator) > _MAX_SEQUENCE:
                raise SecurityError(f"join would exceed {_MAX_SEQUENCE} characters")
        return _check_size(original(*args, **kwargs), f"the {name} filter")

    return guarded


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


# True while MessageTemplates.holes renders: interpolations that render nothing become quality.HOLE.
# A context variable (per thread), read at render time, so one compiled template serves both renders.
_MARKING_HOLES: contextvars.ContextVar[bool] = contextvars.ContextVar("marking_holes", default=False)


@pass_eval_context  # needs the render: Jinja then never folds it into a template at compile time
def _finalize(_eval_ctx: EvalContext, value: Any) -> Any:
    return mark_empty(value) if _MARKING_HOLES.get() else value


def _make_env(root: Path) -> _HRSandbox:
    env = _HRSandbox(
        finalize=_finalize,  # check-config marks empty interpolations (holes) with quality.mark_empty
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
    for name in list(env.filters):
        env.filters[name] = _guarded_filter(name, env.filters[name])
    for name in _REMOVED_GLOBALS:
        env.globals.pop(name, None)
    env.globals["range"] = _capped_range
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
        self._metas: dict[str, tuple[int, TemplateMeta]] = {}  # meta.yaml path → (mtime, meta)
        self._trees: dict[str, tuple[str, nodes.Template]] = {}  # for _check_names: name → (source, tree)
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

    def titles(self) -> dict[str, str]:
        """name → what HR calls the message (its meta.yaml ``description``, else the name), for every
        template: the 一斉配信 menu and the weekly report name messages this way, never by a code."""
        return {name: self.meta(name).description or name for name in self.names()}

    # rendering ------------------------------------------------------------------------------------------

    def meta(self, name: str) -> TemplateMeta:
        """The template's flags from ``meta.yaml`` (essential, expects_reply, …); defaults when absent."""
        resolved = self._resolve(name)
        if resolved is None:
            return TemplateMeta()
        path = self.root / resolved[1] / "meta.yaml"
        try:  # parsed again only when the file changed: check-config asks for it many times
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        known = self._metas.get(str(path))
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        try:
            found = read_meta(path)
        except ValueError as exc:
            raise TemplateProblem(path, None, str(exc).removeprefix(f"{path}: ")) from None
        if stamp is not None:
            self._metas[str(path)] = (stamp, found)
        return found

    def _render_file(self, template_name: str, context: Mapping[str, Any]) -> str:
        """Render one file; every failure becomes a TemplateProblem at the innermost template line."""
        path = self.root / template_name
        try:
            return _bounded_render(self._env.get_template(template_name), dict(context))
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
        short_name = self._optional(rel, SHORT_FILE)
        short = self._render_short(short_name, context) if short_name else None
        for part_name, part in (
            (subject_name, subject),
            (text_name, text),
            (html_name, html),
            (short_name, short.text if short else None),
        ):
            placeholders = find_placeholders(part or "")
            if placeholders and part_name:
                raise TemplateProblem(
                    self.root / part_name,
                    None,
                    f"placeholder text left in the message: 「{placeholders[0]}」 — "
                    "write the real content (or supply it under content: in the config) before sending",
                )

        rendered = {"subject": subject, "text": text, "short": short.text if short else None}
        json_context = {**context, "rendered": rendered}
        survey_url = context.get("survey_url")
        labels = _LABELS.get(loc, _LABELS[DEFAULT_LOCALE])

        parts: dict[str, list[dict[str, Any]] | None] = {}
        authored: set[str] = set()
        for channel in channel_classes():
            json_name = self._optional(rel, f"{channel.name}.json.j2")
            if json_name:
                parts[channel.name] = self._render_json(
                    json_name, json_context, channel.template_key, channel.check_parts
                )
                authored.add(channel.name)
            elif channel.short_form:
                if short is not None and short_name is not None:
                    problem = short_problem(short, channel, survey_url)
                    if problem:
                        raise TemplateProblem(self.root / short_name, None, f"{channel.label}: {problem}")
                parts[channel.name] = (
                    channel.short_parts(
                        subject, short.text, short.link, labels, context.get("unsubscribe_url")
                    )
                    if short
                    else None
                )
            else:
                parts[channel.name] = channel.default_parts(subject, text, survey_url, labels)
        return RenderedMessage(
            subject,
            text,
            html,
            parts,
            short=short.text if short else None,
            link=short.link if short else None,
            short_path=self.root / rel / SHORT_FILE,
            authored=frozenset(authored),
        )

    def _render_short(self, template_name: str, context: Mapping[str, Any]) -> ShortForm:
        raw = _tidy_text(self._render_file(template_name, context))
        try:
            return parse_short(raw)
        except ValueError as exc:
            raise TemplateProblem(self.root / template_name, None, str(exc)) from None

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

    def holes(self, name: str, context: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(part, sentence) for each empty interpolation or empty bracket pair in the rendered message."""
        marking = _MARKING_HOLES.set(True)
        try:
            rendered = self.render(name, context)
        finally:
            _MARKING_HOLES.reset(marking)
        found = [("subject", line) for line in find_holes(rendered.subject)]
        found += [("text", line) for line in find_holes(rendered.text)]
        found += [("html", line) for line in find_holes(rendered.html or "", html=True)]
        found += [("short", line) for line in find_holes(rendered.short or "")]
        if rendered.link is not None and HOLE in rendered.link.label:
            found.append(("short", f"[{rendered.link.label}]".replace(HOLE, HOLE_SHOWN)))
        return found

    def check_sparse(
        self,
        name: str,
        contexts: Sequence[tuple[str, Mapping[str, Any]]],
        chat: Sequence[type[Channel]] = (),
    ) -> None:
        """Render against every (label, context) — sparse holders: no mentor, no department, LINE only,
        mid-career, an October start — and refuse holes, so each message reads naturally for anyone.
        ``chat``: the chat channels the message goes out on; each needs the short form, within its
        limits (checked by rendering). Also: a message that says 「ご返信は不要です」 must be marked
        ``expects_reply: false``."""
        resolved = self._resolve(name)
        folder = self.root / (resolved[1] if resolved else name)
        meta = self.meta(name)
        seen: list[Mapping[str, Any]] = []
        for label, context in contexts:
            if context in seen:  # two sample holders the template sees alike: the same render, once
                continue
            seen.append(context)
            rendered = self.render(name, context)
            for channel in chat:
                rendered.text_for(channel)
            for part, line in self.holes(name, context):
                raise TemplateProblem(
                    folder / f"{part}.j2" if part != "html" else folder / "html.j2",
                    None,
                    f"empty value in 「{line}」 for the sample holder {label}: "
                    "guard it with {% if … %} or write the sentence without it",
                )
            said = [rendered.text, rendered.short or ""]  # the email or the chat form
            if meta.expects_reply and any(says_no_reply_needed(text) for text in said):
                raise TemplateProblem(
                    folder / "meta.yaml",
                    None,
                    "the message says 「ご返信は不要です」: add 'expects_reply: false' so silence after it "
                    "does not count toward 無反応",
                )

    def check(self, name: str) -> None:
        """Render sample data with and without the optional links, so mistakes show at config load;
        then check every branch statically, including those the sample data does not take."""
        self.meta(name)
        full = sample_context()
        with_links = self.render(name, full)
        without = self.render(name, {**full, "survey_url": None, "unsubscribe_url": None, "rsvp_url": None})
        for part in ("subject", "text", "html", "short"):
            if (getattr(without, part) or "").count("None") > (getattr(with_links, part) or "").count("None"):
                resolved = self._resolve(name)
                folder = self.root / (resolved[1] if resolved else name)
                raise TemplateProblem(
                    folder / f"{part}.j2",
                    None,
                    "renders 'None' when survey_url/unsubscribe_url/rsvp_url are unset: guard them with {% if %}",  # noqa: E501
                )
        resolved = self._resolve(name)
        if resolved is not None:
            for filename in ("subject.j2", "text.j2", "html.j2", SHORT_FILE, "slack.json.j2", "line.json.j2"):
                template_name = self._optional(resolved[1], filename)
                if template_name:
                    self._check_names(template_name, full, set())

    def _check_names(self, template_name: str, sample: Mapping[str, Any], seen: set[str]) -> None:
        """Every variable any branch of the template (and what it extends or includes) uses must be one
        the send-time context has: ``{% if x %}{{ holder.nmae }}{% endif %}`` fails here, not at send."""
        if template_name in seen:
            return
        seen.add(template_name)
        try:
            source, filename, _ = self._env.loader.get_source(self._env, template_name)  # type: ignore[union-attr]
            parsed = self._trees.get(template_name)
            if parsed is not None and parsed[0] == source:  # a layout every message extends: parse it once
                tree = parsed[1]
            else:
                tree = self._env.parse(source, template_name, filename)
                self._trees[template_name] = (source, tree)
        except TemplateNotFound:
            return  # rendering reported it already
        except TemplateSyntaxError as exc:
            raise TemplateProblem(
                self.root / template_name, exc.lineno, f"syntax error: {exc.message}"
            ) from exc
        path = Path(filename or self.root / template_name)
        known = set(sample) | set(self._env.globals)
        if template_name.endswith(".json.j2"):
            known.add("rendered")
        for undeclared in sorted(meta.find_undeclared_variables(tree) - known):
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == undeclared), None)
            raise TemplateProblem(
                path, line, f"undefined variable {undeclared!r} (known: {', '.join(sorted(set(sample)))})"
            )
        assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        for node in tree.find_all(nodes.Getattr):
            owner = node.node
            if not isinstance(owner, nodes.Name) or owner.name in assigned:
                continue
            fields = sample.get(owner.name)
            if isinstance(fields, dict) and node.attr not in fields and not hasattr(dict, node.attr):
                raise TemplateProblem(
                    path,
                    node.lineno,
                    f"{owner.name}.{node.attr} is undefined ({owner.name} has: {', '.join(sorted(fields))})",
                )
        for referenced in meta.find_referenced_templates(tree):
            if referenced is not None:
                self._check_names(referenced, sample, seen)


def _tidy_text(text: str) -> str:
    """Drop trailing spaces and blank-line runs that conditional blocks leave behind."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


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
        "rsvp_url": "https://followup.example.jp/e/c2FtcGxl.9b1c",
        "pool": {
            "page_url": "https://followup.example.jp/r/c2FtcGxl.4c1d",
            "career_url": "https://followup.example.jp/go/c2FtcGxl.8e2f",
            "career_label": "キャリア相談サービスのご案内",
            "openings_url": "https://followup.example.jp/go/c2FtcGxl.1a7b",
            "consented": True,
        },
        "event": {
            "title": "先輩社員とのオンライン座談会",
            "starts_at": datetime(2026, 8, 20, 18, 0, tzinfo=JST),
            "place": "オンライン(Zoom)",
            "url": "https://zoom.us/j/1234567890",
            "deadline": date(2026, 8, 13),
        },
        "task": {
            "title": "身元保証書",
            "kind": "document",
            "due": date(2027, 2, 18),
            "overdue": False,
            "days_left": 7,
            "submit_url": "https://example.co.jp/naitei/upload",
            "how": "ご署名・ご捺印のうえ、同封の返信用封筒でご郵送ください",
        },
        "cohort": {
            "title": "2027年度 新卒内定者の交流グループ",
            "line_group_url": "https://line.me/R/ti/g/sample",
        },
    }
