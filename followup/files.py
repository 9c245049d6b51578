"""Files with personal data are private to the service user: 0600 files in 0700 directories.

The database, the outbox (rendered messages with names and addresses), reports and the link-signing
key are written through these helpers, whatever the process umask is. ``followup`` itself also runs
with umask 077 (``followup.cli.main``), so anything else it writes is private too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path | str) -> Path:
    """Create ``path`` and its missing parents as 0700 directories (existing ones are left alone)."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process created it first
            directory.mkdir(mode=DIR_MODE)
        with contextlib.suppress(OSError):
            os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def write_private(path: Path | str, data: bytes | str, *, atomic: bool = True) -> None:
    """Write ``data`` to ``path`` as a 0600 file (atomically: a temp file in the folder, then rename)."""
    path = Path(path)
    private_dir(path.parent)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            if atomic:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_private(path: Path | str) -> None:
    """Drop group and other permissions from an existing file (best effort: it may not be ours)."""
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
