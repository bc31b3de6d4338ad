"""Atomic file writing: an interrupted run leaves the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`, and move it onto `path` when the block succeeds.

    The temporary file keeps the target's suffix, so writers that choose a format by
    extension (matplotlib, OpenCV, numpy) still work. On an exception it is deleted.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        # mkstemp creates the file with mode 0600. Give it the replaced file's mode, or the
        # mode a plain open() would give, so figures and checkpoints stay readable by others.
        os.chmod(temporary, _target_mode(target))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def _target_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def backup_file(path: PathLike) -> Path:
    """Copy `path` to the first free name of `path.bak`, `path.bak1`, ... and return it."""
    source = Path(path)
    candidate = source.with_name(source.name + ".bak")
    counter = 1
    while candidate.exists():
        candidate = source.with_name(f"{source.name}.bak{counter}")
        counter += 1
    shutil.copy2(source, candidate)
    return candidate
