"""Load ``followup.yaml`` into a :class:`Policy`, or fail with ``FILE:LINE:COL`` for every problem.

ruamel.yaml keeps each node's position, so a pydantic error path (``cadences.new_grad.phases.0.every``)
maps back to the line and column HR has to fix. Checks that span the file (a template or survey that
does not exist, phases that overlap) run after the schema and report positions the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from followup.config.schema import ENV_REF, Policy
from followup.durations import Anchor
from followup.errors import ConfigError, Problem

Loc = Sequence[int | str]


class LoadedPolicy:
    """A validated policy with where it came from (for templates and messages)."""

    def __init__(self, policy: Policy, path: Path) -> None:
        self.policy = policy
        self.path = path

    @property
    def templates_root(self) -> Path:
        return (self.path.parent / self.policy.templates_dir).resolve()


def resolve_env(ref: str | None) -> str | None:
    """``${SMTP_URL}`` → the environment's value, or None when unset or empty."""
    if ref is None:
        return None
    match = ENV_REF.match(ref)
    if not match:
        return ref
    return os.environ.get(match.group(1)) or None


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
        root = yaml.load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ConfigError(Problem(path, line, col, f"YAML: {exc.problem or exc.context}")) from None
    except UnicodeDecodeError:
        raise ConfigError(Problem(path, None, None, "the file is not UTF-8 text")) from None
    if not isinstance(root, CommentedMap):
        raise ConfigError(Problem(path, 1, 1, "expected a mapping of settings at the top level"))
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
    problems = _cross_check(loaded, root, check_templates=check_templates)
    if problems:
        raise ConfigError(problems)
    return loaded


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
        checked: set[str] = set()

    def check_template(loc: Loc, name: str) -> None:
        if templates is None:
            return
        if not templates.exists(name):
            add(loc, f"template {name!r} not found under {loaded.templates_root}/messages/")
        elif name not in checked:
            checked.add(name)
            try:
                templates.check(name)
            except TemplateProblem as exc:
                add(loc, f"template {name!r} does not render: {exc}")

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
    return problems


def check_messages(loaded: LoadedPolicy, root: Any | None = None) -> list[Problem]:
    """What ``check-config`` adds to the load-time checks: every template the policy names, rendered
    against sparse sample holders (no mentor, no department, LINE only, mid-career, October start), with
    no hole in any sentence; dated content where a template needs it; a name for every reminder."""
    from followup.config.messages import sample_contexts
    from followup.rendering.templates import MessageTemplates, TemplateProblem

    policy, path = loaded.policy, loaded.path
    if root is None:
        yaml = YAML(typ="rt")
        root = yaml.load(path.read_text(encoding="utf-8"))
    problems: list[Problem] = []

    def add(loc: Loc, message: str) -> None:
        line, col = _position(root, loc)
        problems.append(Problem(path, line, col, message))

    templates = MessageTemplates(loaded.templates_root, policy.organization.locale)
    uses: dict[str, list[tuple[str, str, str | None]]] = {}
    where: dict[str, Loc] = {}
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
                entry = (phase.name, phase.label, event)
                if entry not in uses.setdefault(name, []):
                    uses[name].append(entry)
                where.setdefault(name, loc)
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
            templates.check_sparse(name, sample_contexts(policy, name, entries))
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
