"""Errors a person fixes by editing a file: they say which file, where, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class UserInputError(Exception):
    """Bad input from a file or the command line. The CLI prints each problem and exits with status 2."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserInputError):
    """The YAML policy (or a template it names) is invalid: ``FILE:LINE:COL: message``."""


class ImportRowsError(UserInputError):
    """Rows of a holders CSV are invalid: ``FILE:LINE: message``; nothing was imported."""


class SettingsError(Exception):
    """An environment setting cannot be used (e.g. a weak secret). Each message names the variable;
    the CLI prints them and exits with status 2. Not a ValueError, so pydantic passes it through."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))
