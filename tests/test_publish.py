"""Output folders are replaced atomically: readers see the old version or the new."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from retain.base.publish import publish_folder


def _write(text: str):  # type: ignore[no-untyped-def]
    def write(folder: Path) -> None:
        (folder / "table.csv").write_text(text)

    return write


def test_a_new_version_replaces_the_old_and_the_old_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "forecasts"
    publish_folder(out, _write("v1"))
    first = os.readlink(out)
    publish_folder(out, _write("v2"))
    assert (out / "table.csv").read_text() == "v2"
    assert out.is_symlink() and os.readlink(out) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["forecasts", os.readlink(out)])
    mode = stat.S_IMODE(os.stat(out).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask  # readable as any folder the user creates, not 0700


def test_a_failed_write_keeps_the_published_version_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "forecasts"
    publish_folder(out, _write("v1"))

    def broken(folder: Path) -> None:
        (folder / "table.csv").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_folder(out, broken)
    assert (out / "table.csv").read_text() == "v1"
    assert len(list(tmp_path.iterdir())) == 2  # the link and its version


def test_a_plain_folder_from_before_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "forecasts"
    out.mkdir()
    (out / "old.csv").write_text("old")
    publish_folder(out, _write("new"))
    assert out.is_symlink() and not (out / "old.csv").exists()
    assert (out / "table.csv").read_text() == "new"
