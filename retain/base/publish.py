"""Publish an output folder so readers see the old content or the new, never a mix.

The folder's path is a symbolic link to a versioned sibling (`.<name>-<id>`). New
content is written to a fresh sibling, then a new link replaces the old one with a
single rename, which is atomic on POSIX file systems; the superseded version is removed
afterwards. A crash at any point leaves the previous version published and at most an
unreferenced sibling behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def publish_folder(folder: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(staging)` to fill a new version, then make it `folder` atomically."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    version = folder.parent / f".{folder.name}-{uuid.uuid4().hex[:12]}"
    version.mkdir()
    try:
        write(version)
        link = folder.parent / f".{folder.name}-link-{uuid.uuid4().hex[:12]}"
        link.symlink_to(version.name)  # relative: the pair can move together
        previous = os.readlink(folder) if folder.is_symlink() else None
        if folder.exists() and not folder.is_symlink():
            # a plain folder from before links were used: moved aside once, not atomically
            shutil.rmtree(folder)
        os.replace(link, folder)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    ours = previous is not None and previous.startswith(f".{folder.name}-")
    if ours and previous != version.name:  # never delete a folder someone else linked
        shutil.rmtree(folder.parent / str(previous), ignore_errors=True)
    return folder


def publish_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary)` beside `path`, then rename it into place (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}-{uuid.uuid4().hex[:12]}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
