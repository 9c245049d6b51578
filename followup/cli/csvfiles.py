"""CSV files for Excel, shared by ``events`` and ``tasks``: write an export (CP932 or UTF-8 with BOM,
all or nothing) and read back the sheet HR filled in (either encoding)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from followup.errors import Problem, UserInputError
from followup.files import write_private


def write_export(path: Path, lines: Sequence[Sequence[str]], encoding: str) -> None:
    """Write ``lines`` (header first) to ``path``; a bad encoding or a character CP932 cannot hold is
    exit 2 with nothing written. The file is encoded whole before it is written (one event's or
    task's audience), so a failure never leaves half a file."""
    from followup.events.roster import ENCODINGS, to_csv

    if encoding not in ENCODINGS:
        raise UserInputError(Problem(path, None, None, f"--encoding must be one of {', '.join(ENCODINGS)}"))
    try:
        data = to_csv(lines, encoding)
    except ValueError as exc:
        raise UserInputError(Problem(path, None, None, str(exc))) from None
    write_private(path, data)


def read_sheet(path: Path) -> str:
    """The text of a CSV Excel saved: UTF-8 (with or without BOM) or CP932."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserInputError(Problem(path, None, None, f"cannot read: {exc.strerror}")) from None
    for codec in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    raise UserInputError(Problem(path, None, None, "UTF-8 でも CP932 でも読めません"))
