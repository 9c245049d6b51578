"""What makes a rendered message sendable, beyond "it rendered": no holes, no placeholders, known flags.

* **Holes.** A value that renders empty inside a sentence (「メンターのへご相談」, 「氏名:」) is found by
  rendering with a ``finalize`` hook that turns every empty ``{{ … }}`` into :data:`HOLE`; check-config
  renders each template against sparse sample holders (no mentor, no department, LINE only, …) and
  reports each hole with the sentence around it.
* **Placeholders.** Text HR was meant to replace (〇〇, 【要編集】, TODO) is refused at render time, so
  such a message is never sent (holder data is not text HR wrote, but the check cannot tell: a holder
  named 〇〇 would be refused too, which is the safe side).
* **Template flags** live beside the template in ``meta.yaml``::

      essential: true         # 入社手続きの必須連絡: sent despite a follow-up opt-out, no opt-out link
      expects_reply: false    # says 「ご返信は不要です」: not counted toward 無反応 (unresponsive)
      opt_out_link: false     # a personal letter (the president's welcome): no bulk-mail footer/header
      needs_content: true     # shows the month's entry from ``content:`` and cannot be sent without it
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

HOLE = "\ue000"  # private-use character: never in real text
HOLE_SHOWN = "〓"  # how a hole is shown to HR (the 下駄記号, the typesetter's "missing character")

PLACEHOLDER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[〇○●◯]{2,}"), "〇〇"),
    (re.compile(r"[△×]{2,}|XX+"), "××"),
    (re.compile(r"【要(?:編集|修正|確認|記入)】"), "【要編集】"),
    (re.compile(r"\bTODO\b|\bTBD\b|\bFIXME\b"), "TODO"),
    (re.compile(r"ここに[^。\n]{0,20}(?:入力|記入|書いて)"), "ここに…を入力"),
)
_ANY_PLACEHOLDER = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in PLACEHOLDER_PATTERNS))
# Pairs of brackets with nothing inside: what a concatenation such as "(" ~ department ~ ")" leaves.
EMPTY_BRACKETS = re.compile(r"\(\)|\uff08\uff09|\u300c\u300d|\u300e\u300f|\u3010\u3011|\[\]")
EXPECTS_NO_REPLY = re.compile(r"ご返信は(?:不要|必要ございません|いりません)")

_META_KEYS = {"essential", "expects_reply", "opt_out_link", "needs_content", "description"}


@dataclass(frozen=True)
class TemplateMeta:
    essential: bool = False
    expects_reply: bool = True
    opt_out_link: bool = True
    needs_content: bool = False
    description: str = ""

    @property
    def carries_opt_out(self) -> bool:
        """Bulk follow-up mail carries an opt-out link; essential notices and personal letters do not."""
        return self.opt_out_link and not self.essential


def read_meta(path: Path) -> TemplateMeta:
    """``meta.yaml`` of one message directory; absent means the defaults. Raises ValueError (with the
    path) for unknown keys or values of the wrong type."""
    if not path.is_file():
        return TemplateMeta()
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    except YAMLError as exc:
        raise ValueError(f"{path}: YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping such as 'expects_reply: false'")
    unknown = sorted(set(data) - _META_KEYS)
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_META_KEYS))})"
        )
    for key, value in data.items():
        expected = str if key == "description" else bool
        if not isinstance(value, expected):
            raise ValueError(f"{path}: {key} must be {'text' if expected is str else 'true or false'}")
    return TemplateMeta(**data)


def mark_empty(value: Any) -> Any:
    """Jinja ``finalize`` for checking: an interpolation that renders nothing becomes :data:`HOLE`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return HOLE
    return value


_TAG = re.compile(r"<[^>]+>")


def _sentences(text: str, html: bool) -> list[str]:
    if html:
        text = _TAG.sub("\n", text)
    return [line.strip() for line in text.splitlines() if line.strip()]


def find_holes(text: str, *, html: bool = False) -> list[str]:
    """The lines of ``text`` holding an empty interpolation or empty brackets, with the hole shown."""
    found: list[str] = []
    for line in _sentences(text, html):
        if HOLE in line or EMPTY_BRACKETS.search(line):
            found.append(line.replace(HOLE, HOLE_SHOWN))
    return found


_URL = re.compile(r"https?://\S+")


def find_placeholders(text: str) -> list[str]:
    """Placeholder text left in a rendered message: the matched marker with a little context.

    Links are blanked first: a signed token is random text and may well contain ``XX``."""
    text = _URL.sub(lambda m: " " * len(m.group(0)), text)
    if not _ANY_PLACEHOLDER.search(text):  # the usual case: one pass instead of one per pattern
        return []
    found: list[str] = []
    for pattern, _label in PLACEHOLDER_PATTERNS:
        for match in pattern.finditer(text):
            start, end = max(0, match.start() - 12), min(len(text), match.end() + 12)
            found.append(text[start:end].replace("\n", " "))
    return found


def says_no_reply_needed(text: str) -> bool:
    return EXPECTS_NO_REPLY.search(text) is not None
