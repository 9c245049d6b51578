"""Load ``followup.yaml`` into a :class:`Policy`, or fail with ``FILE:LINE:COL`` for every problem.

ruamel.yaml keeps each node's position, so a pydantic error path (``cadences.new_grad.phases.0.every``)
maps back to the line and column HR has to fix. Checks that span the file (a template or survey that
does not exist, phases that overlap) run after the schema and report positions the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from followup import __version__
from followup.channels.base import resolve_env as resolve_env
from followup.config.schema import Policy
from followup.durations import Anchor
from followup.errors import ConfigError, Problem
from followup.vocab import POOL_CADENCE

Loc = Sequence[int | str]


class LoadedPolicy:
    """A validated policy with where it came from (for templates and messages)."""

    def __init__(self, policy: Policy, path: Path, warnings: Sequence[Problem] = ()) -> None:
        self.policy = policy
        self.path = path
        self.warnings = list(warnings)  # not errors: check-config prints them (a one-time template repeated)
        # What load_policy already built, for check_messages to reuse: the round-trip YAML (with the
        # text it came from) and the templates, each compiled once per process instead of twice.
        self._source: tuple[str, Any] | None = None
        self._templates: Any = None
        self._checked_before: str | None = None  # the digest of an earlier passed template check
        self._digest: str | None = None  # this load's digest, remembered once its checks pass

    @property
    def templates_root(self) -> Path:
        return (self.path.parent / self.policy.templates_dir).resolve()


def _position(root: Any, loc: Loc) -> tuple[int | None, int | None]:
    """1-based line and column of the deepest node on ``loc`` that exists in the YAML tree."""
    node, line, col = root, 1, 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            if isinstance(node[part], CommentedMap | CommentedSeq) and node[part]:
                line, col = node.lc.key(part)[0] + 1, node.lc.key(part)[1] + 1
            else:
                line, col = node.lc.value(part)[0] + 1, node.lc.value(part)[1] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)[0] + 1, node.lc.item(part)[1] + 1
            node = node[part]
        elif isinstance(node, CommentedMap) and isinstance(part, str) and not part[:1].isalpha():
            continue  # pydantic's internal step names (e.g. "function-before[...]")
        else:
            break
    return line, col


def _key_position(root: Any, loc: Loc) -> tuple[int | None, int | None]:
    """Position of the *key* at the end of ``loc`` (for unknown keys)."""
    parent = root
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return _position(root, loc)
    if isinstance(parent, CommentedMap) and loc[-1] in parent:
        line, col = parent.lc.key(loc[-1])
        return line + 1, col + 1
    return _position(root, loc)


MAX_ALIAS_NODES = 1_000  # values reached through YAML aliases; a handful of shared blocks stays far below


def _check_aliases(root: Any, path: Path) -> None:
    """Refuse alias bombs ("billion laughs") and recursive aliases before anything expands them.

    ruamel keeps an alias as a second reference to the anchored node, so loading is cheap; it is the
    copy into plain dicts (and every later walk) that grows exponentially. Walk the tree the way the
    copy would, counting what is reached through an alias, and stop at the alias that passes the bound.
    """
    seen: set[int] = set()
    ancestors: set[int] = set()
    budget = MAX_ALIAS_NODES

    def fail(where: tuple[int, int], message: str) -> None:
        raise ConfigError(Problem(path, where[0] + 1, where[1] + 1, message))

    def walk(node: Any, alias_at: tuple[int, int] | None) -> None:
        nonlocal budget
        if not isinstance(node, CommentedMap | CommentedSeq):
            return
        ancestors.add(id(node))
        seen.add(id(node))
        if isinstance(node, CommentedMap):
            items: list[tuple[Any, tuple[int, int]]] = [
                (child, tuple(node.lc.value(key))) for key, child in node.items()
            ]
        else:
            items = [(child, tuple(node.lc.item(i))) for i, child in enumerate(node)]
        for child, where in items:
            reached = alias_at
            if isinstance(child, CommentedMap | CommentedSeq):
                if id(child) in ancestors:
                    fail(where, "YAML: a recursive alias (an anchor used inside itself) is not allowed")
                if id(child) in seen and reached is None:
                    reached = where
            if reached is not None:
                budget -= 1
                if budget < 0:
                    fail(
                        reached,
                        f"YAML: aliases expand to more than {MAX_ALIAS_NODES} values "
                        "(an alias bomb?); write the values out or use fewer aliases",
                    )
            walk(child, reached)
        ancestors.discard(id(node))

    walk(root, None)


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _message(error: Any) -> str:
    kind, msg, loc = error["type"], error["msg"], error["loc"]
    field = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top level)"
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    msg = msg.removeprefix("Value error, ")
    return f"{field}: {msg}"


def load_policy(path: Path | str, *, check_templates: bool = True) -> LoadedPolicy:
    """Parse, validate and cross-check the policy file. Raises :class:`ConfigError` listing every problem."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            Problem(path, None, None, "config file not found (set --config or FOLLOWUP_CONFIG)")
        )
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        raise ConfigError(yaml_problem(path, text, exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(
            Problem(path, None, None, "UTF-8 で保存してください (the file is not UTF-8 text)")
        ) from None
    if not isinstance(root, CommentedMap):
        raise ConfigError(Problem(path, 1, 1, "expected a mapping of settings at the top level"))
    _check_aliases(root, path)
    try:
        policy = Policy.model_validate(_plain(root))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            line, col = (_key_position if error["type"] == "extra_forbidden" else _position)(root, loc)
            problems.append(Problem(path, line, col, _message(error)))
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0))) from None
    loaded = LoadedPolicy(policy, path)
    loaded._source = (text, root)
    problems = _cross_check(loaded, root, check_templates=check_templates)
    if problems:
        raise ConfigError(problems)
    loaded.warnings = _warnings(policy, path, root)
    if check_templates:
        _remember_passed_check(loaded)
    return loaded


def _check_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "followup" / "template-checks"


def _check_digest(loaded: LoadedPolicy) -> str:
    """What the template check's result depends on: this code, the policy text and every template
    file (names and bytes). Any change gives another digest, so only a passed check is ever reused."""
    digest = hashlib.sha256(__version__.encode())
    for module_dir in (Path(__file__).parent, Path(__file__).parents[1] / "rendering"):
        for source in sorted(module_dir.glob("*.py")):
            stat = source.stat()
            digest.update(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if loaded._source is not None:
        digest.update(loaded._source[0].encode())
    root = loaded.templates_root
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def _passed_check(loaded: LoadedPolicy) -> str | None:
    """The digest, if exactly these templates and this policy already passed the render checks:
    every command loads the policy, and rendering each template against the sparse samples costs
    most of a second. ``check-config`` always checks again (``check_messages``)."""
    with suppress(OSError):
        digest = _check_digest(loaded)
        if (_check_cache_dir() / digest).is_file():
            return digest
        loaded._digest = digest
    return None


def _remember_passed_check(loaded: LoadedPolicy) -> None:
    if loaded._checked_before is not None or loaded._digest is None:
        return
    with suppress(OSError):
        folder = _check_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / loaded._digest).touch()


def _warnings(policy: Policy, path: Path, root: Any) -> list[Problem]:
    """What is valid but probably not meant: a one-time template that a rotation sends again, an event
    invitation timed by a rotation slot instead of the event's dates."""
    found: list[Problem] = []

    def warn(loc: Loc, message: str) -> None:
        line, col = _position(root, loc)
        found.append(Problem(path, line, col, message))

    once: dict[str, str] = {}  # template → where it is declared one-time
    for cname, cadence in policy.cadences.items():
        for phase in cadence.phases:
            for one_off in phase.one_off:
                if one_off.template is not None:
                    once.setdefault(one_off.template, f"one-off '{one_off.name}' of {cname}.{phase.name}")
            for ref in phase.templates:
                if ref.once:
                    once.setdefault(ref.template, f"once: true in {cname}.{phase.name}")
    for cname, cadence in policy.cadences.items():
        seen_once: dict[str, str] = {}
        for index, phase in enumerate(cadence.phases):
            for t_index, ref in enumerate(phase.templates):
                loc: Loc = ("cadences", cname, "phases", index, "templates", t_index)
                if ref.once and ref.template in seen_once:
                    warn(
                        loc,
                        f"一度だけ送るテンプレート {ref.template!r} が {seen_once[ref.template]} にもあり、"
                        f"2回送られます (one-time template {ref.template!r} is also in phase "
                        f"{seen_once[ref.template]}: it goes twice)",
                    )
                if ref.once:
                    seen_once.setdefault(ref.template, phase.name)
                elif ref.template in once:
                    warn(
                        loc,
                        f"一度だけ送るテンプレート {ref.template!r} ({once[ref.template]}) が、この順番"
                        f"(templates) の中で繰り返し送られます。once: true を付けてください "
                        f"(a rotation repeats the one-time template {ref.template!r}: write "
                        f"{{template: {ref.template}, once: true}})",
                    )
                if ref.event is not None:
                    warn(
                        loc,
                        f"行事 {ref.event!r} の案内が順番(templates)の回に送られ、日程とずれます。"
                        f"events.{ref.event}.invitation で行事の日付から計画してください "
                        f"(an event in a rotation is timed by the rotation, not by the event)",
                    )
    return found


_FULLWIDTH_KEY = re.compile(r"^(\s*(?:-\s+)?)([^\s#'\"：:][^#'\"：:]*?)\s*：")
# parser text → what an HR person can do about it (Japanese first; the parser's words follow)
_YAML_HINTS = (
    (
        "expected <block end>",
        "字下げ(行頭のスペース)がずれています。この行の字下げを、同じ階層の上の行とそろえてください",
    ),
    (
        "mapping values are not allowed",
        '字下げが深すぎるか、値の中に「: 」があります。字下げをそろえるか、値を "…" で囲んでください',
    ),
    ("could not find expected ':'", "「キー: 値」のコロン(半角の「:」と後ろの半角スペース)が見つかりません"),
    ("cannot start any token", "タブ文字は使えません。字下げは半角スペースで書いてください"),
    ("duplicate key", "同じキーが2回書かれています。どちらか一方を消してください"),
    ("quoted scalar", "引用符 \" または ' が閉じられていません"),
    ("expected ',' or ']'", "[ ] のリストが閉じられていないか、区切りの「,」がありません"),
    ("expected ',' or '}'", "{ } の中が閉じられていないか、区切りの「,」がありません"),
)


def yaml_problem(path: Path, text: str, exc: MarkedYAMLError) -> Problem:
    """A YAML syntax error on the line HR has to fix, in Japanese first, the parser's text after it.

    A full-width colon (``every：1mo``, typed with the Japanese IME) is found in the text itself: the
    parser only notices it on a later line."""
    parser_text = " ".join(str(p) for p in (exc.problem, exc.context) if p) or str(exc)
    mark = exc.problem_mark or exc.context_mark
    if exc.context == "while scanning a simple key" and exc.context_mark is not None:
        mark = exc.context_mark  # the key without its colon is on the earlier line
    error_line = mark.line if mark is not None else len(text.splitlines())
    for number, line in enumerate(text.splitlines()[: error_line + 1]):
        match = _FULLWIDTH_KEY.match(line)
        if match and not line.lstrip().startswith("#"):
            key = match.group(2)
            return Problem(
                path,
                number + 1,
                len(match.group(1)) + len(key) + 1,
                f"全角のコロン「：」が使われています。半角の「:」と半角スペースに直してください "
                f"(例: {key}: …) (YAML: {parser_text})",
            )
    hint = next((words for needle, words in _YAML_HINTS if needle in parser_text), None)
    hint = hint or "YAML の書き方に誤りがあります。この行と、その直前の行を確認してください"
    line_no = mark.line + 1 if mark is not None else None
    col = mark.column + 1 if mark is not None else None
    return Problem(path, line_no, col, f"{hint} (YAML: {parser_text})")


def _same_base_overlap(earlier: Anchor, later: Anchor) -> bool:
    """True when two bounds on the same base date are in the wrong order (``later`` < ``earlier``)."""
    if earlier.base != later.base:
        return False

    def days(anchor: Anchor) -> float:
        return anchor.sign * anchor.offset.approx_days() if anchor.offset else 0.0

    return days(later) < days(earlier)


def _cross_check(loaded: LoadedPolicy, root: Any, *, check_templates: bool) -> list[Problem]:
    policy, path = loaded.policy, loaded.path
    problems: list[Problem] = []

    def add(loc: Loc, message: str) -> None:
        line, col = _position(root, loc)
        problems.append(Problem(path, line, col, message))

    templates = None
    if check_templates:
        from followup.rendering.templates import MessageTemplates, TemplateProblem

        templates = MessageTemplates(loaded.templates_root, policy.organization.locale)
        loaded._templates = templates
        loaded._checked_before = _passed_check(loaded)
        checked: set[str] = set()

    def check_template(loc: Loc, name: str) -> None:
        if templates is None:
            return
        if not templates.exists(name):
            add(loc, f"template {name!r} not found under {loaded.templates_root}/messages/")
        elif name not in checked and loaded._checked_before is None:
            checked.add(name)
            try:
                templates.check(name)
            except TemplateProblem as exc:
                add(loc, f"template {name!r} does not render: {exc}")

    for ename, event in policy.events.items():
        for kind, touch in event.touches():
            check_template(("events", ename, kind, "template"), touch.template)
    for tname, task in policy.tasks.items():
        check_template(("tasks", tname, "template"), task.template)
    for track, cohort in policy.cohorts.items():
        if cohort.template is not None:
            check_template(("cohorts", track, "template"), cohort.template)
    for cname, cadence in policy.cadences.items():
        for index, phase in enumerate(cadence.phases):
            base: Loc = ("cadences", cname, "phases", index)
            if _same_base_overlap(phase.start, phase.end) or str(phase.start) == str(phase.end):
                add(
                    (*base, "to"),
                    f"phase {phase.name!r} is empty: it ends ({phase.end}) "
                    f"before or when it starts ({phase.start})",
                )
            if index > 0:
                previous = cadence.phases[index - 1]
                if _same_base_overlap(previous.end, phase.start):
                    add(
                        (*base, "from"),
                        f"phase {phase.name!r} starts ({phase.start}) before the previous "
                        f"phase {previous.name!r} ends ({previous.end}): phases overlap",
                    )
            for t_index, ref in enumerate(phase.templates):
                check_template((*base, "templates", t_index), ref.template)
                if ref.event is not None and ref.event not in policy.events:
                    add((*base, "templates", t_index), f"event {ref.event!r} is not defined under events:")
            if phase.survey is not None and phase.survey.template is not None:
                check_template((*base, "survey", "template"), phase.survey.template)
            if phase.survey is not None and phase.survey.form not in policy.surveys:
                add((*base, "survey", "form"), f"survey {phase.survey.form!r} is not defined under surveys:")
            for o_index, one_off in enumerate(phase.one_off):
                if one_off.template is not None:
                    check_template((*base, "one_off", o_index, "template"), one_off.template)
                if one_off.survey is not None and one_off.survey not in policy.surveys:
                    add((*base, "one_off", o_index, "survey"), f"survey {one_off.survey!r} is not defined")
        names = [p.name for p in cadence.phases]
        if len(set(names)) != len(names):
            add(("cadences", cname, "phases"), "phase names must be unique within a cadence")
    if POOL_CADENCE in policy.cadences:
        add(("cadences", POOL_CADENCE), f"the cadence name {POOL_CADENCE!r} is the talent pool's: rename it")
    if policy.pool.enabled:
        for s_index, step in enumerate(policy.pool.steps):
            check_template(("pool", "steps", s_index, "template"), step.template)
    return problems


def check_messages(loaded: LoadedPolicy, root: Any | None = None) -> list[Problem]:
    """What ``check-config`` adds to the load-time checks: every template the policy names, rendered
    against sparse sample holders (no mentor, no department, LINE only, mid-career, October start), with
    no hole in any sentence; dated content where a template needs it; a name for every reminder."""
    from followup.channels import channel_class
    from followup.config.messages import sample_contexts
    from followup.rendering.templates import MessageTemplates, TemplateProblem

    policy, path = loaded.policy, loaded.path
    if root is None:
        text = path.read_text(encoding="utf-8")
        if loaded._source is not None and loaded._source[0] == text:
            root = loaded._source[1]  # the file load_policy parsed, unchanged since
        else:
            yaml = YAML(typ="rt")
            root = yaml.load(text)
    problems: list[Problem] = []

    def add(loc: Loc, message: str) -> None:
        line, col = _position(root, loc)
        problems.append(Problem(path, line, col, message))

    templates = loaded._templates
    if not isinstance(templates, MessageTemplates) or templates.root != loaded.templates_root.resolve():
        templates = MessageTemplates(loaded.templates_root, policy.organization.locale)
    uses: dict[str, list[tuple[str, str, str | None]]] = {}
    where: dict[str, Loc] = {}
    sent_on: dict[str, set[str]] = {}  # template → the channels it may go out on (chat ones need short.j2)
    every_channel = {c for cadence in policy.cadences.values() for p in cadence.phases for c in p.channels}
    for cname, cadence in policy.cadences.items():
        for index, phase in enumerate(cadence.phases):
            base: Loc = ("cadences", cname, "phases", index)
            refs: list[tuple[str, str | None, Loc]] = [
                (ref.template, ref.event, (*base, "templates", t)) for t, ref in enumerate(phase.templates)
            ]
            if phase.survey is not None and phase.survey.template is not None:
                refs.append((phase.survey.template, None, (*base, "survey", "template")))
            for o_index, one_off in enumerate(phase.one_off):
                if one_off.template is not None:
                    refs.append((one_off.template, None, (*base, "one_off", o_index, "template")))
                if one_off.kind == "manual" and not assignee_name(
                    policy, one_off.assignee, one_off.assignee_name
                ):
                    add(
                        (*base, "one_off", o_index, "assignee"),
                        f"the reminder for {one_off.name!r} cannot address {one_off.assignee or 'HR'} by "
                        "name: add assignee_name, or the address to mentors: / organization.president_email",
                    )
            for name, event, loc in refs:
                sent_on.setdefault(name, set()).update(phase.channels)
                entry = (phase.name, phase.label, event)
                if entry not in uses.setdefault(name, []):
                    uses[name].append(entry)
                where.setdefault(name, loc)
    for event_name, planned in policy.events.items():  # event touches see their event
        for kind, touch in planned.touches():
            sent_on.setdefault(touch.template, set()).update(planned.channels or every_channel)
            entry = ("event", str(planned.title), event_name)
            if entry not in uses.setdefault(touch.template, []):
                uses[touch.template].append(entry)
            where.setdefault(touch.template, ("events", event_name, kind, "template"))
    for tname, task in policy.tasks.items():  # task reminders see their task and its due date
        if templates.exists(task.template) and task.template not in uses:
            try:
                templates.check_sparse(
                    task.template,
                    sample_contexts(policy, task.template, [("task", task.title, None)], task=tname),
                )
            except TemplateProblem as exc:
                add(("tasks", tname, "template"), f"template {task.template!r}: {exc}")
    if policy.pool.enabled:  # the talent pool's mails, rendered with and without their optional links
        for s_index, step in enumerate(policy.pool.steps):
            entry = (step.name, "", None)
            if entry not in uses.setdefault(step.template, []):
                uses[step.template].append(entry)
            where.setdefault(step.template, ("pool", "steps", s_index, "template"))
    for name, entries in uses.items():
        if not templates.exists(name):
            continue  # reported by the load-time check
        try:
            meta = templates.meta(name)
            if meta.needs_content and not policy.content.get(name):
                add(
                    where[name],
                    f"template {name!r} shows monthly content but content: has no entry for it "
                    f"(add content: {{{name}: [{{month: YYYY-MM, topics: [...]}}]}})",
                )
                continue
            chat = [channel_class(c) for c in sorted(sent_on.get(name, ())) if channel_class(c).short_form]
            templates.check_sparse(name, sample_contexts(policy, name, entries), chat)
        except TemplateProblem as exc:
            add(where[name], f"template {name!r}: {exc}")
    return problems


def assignee_name(policy: Policy, assignee: str | None, configured: str = "") -> str:
    """How a manual touch's reminder addresses its assignee: 「佐藤社長」, a mentor's name, or HR's."""
    org = policy.organization
    if configured:
        return configured
    address = assignee or org.hr_email
    if org.president_email and address == org.president_email and org.president:
        from followup.config.messages import family_name

        return f"{family_name(org.president)}社長"
    mentor = policy.mentors.get(address)
    if mentor is not None:
        return mentor.name
    if address == org.hr_email and org.hr_name:
        return org.hr_name
    return ""
