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
