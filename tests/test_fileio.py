"""Atomic writes: the old file or the new one, never a part, and sensible permissions."""

from __future__ import annotations

import os
import stat

import pytest

from llrformer.fileio import atomic_path, backup_file, write_text_atomic


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "figure.png"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


def test_temporary_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "a" / "table.csv") as temporary:
        assert temporary.suffix == ".csv"
        assert temporary.parent == tmp_path / "a"
        temporary.write_text("x")
    assert (tmp_path / "a" / "table.csv").read_text() == "x"


def test_new_file_mode_follows_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


def test_replaced_file_keeps_mode(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")
    target.chmod(0o640)
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_backup_names_do_not_collide(tmp_path):
    source = tmp_path / "a.json"
    source.write_text("1")
    first = backup_file(source)
    second = backup_file(source)
    assert first.name == "a.json.bak"
    assert second.name == "a.json.bak1"
    assert first.read_text() == second.read_text() == "1"
