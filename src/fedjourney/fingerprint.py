"""A centre's dataset fingerprint: a hash of its files, computed where the data lives; and
its stat signature, a cheap stand-in that says whether the files may have changed since."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def dataset_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative name and content, in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def stat_signature(folder: Path) -> str:
    """sha256 over every entry under folder but its sub-folders — relative name, type,
    size, mtime_ns, ctime_ns, inode, and a link's target — read with lstat, no file opened:
    a new extract, an edited, added, removed, renamed or replaced file, or a new link each
    change it (ctime too changes on any write, even one that puts mtime back). Equal
    signatures mean the files were not touched, so the fingerprint taken with the first
    still holds; a missing folder has the signature of an empty one."""
    lines = []
    for root, dirs, files in os.walk(folder):  # not into linked folders: each is an entry
        here = Path(root)
        for name in [*files, *(d for d in dirs if (here / d).is_symlink())]:
            path = here / name
            try:
                st = path.lstat()
                target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            except OSError:  # gone since the folder was listed: the data is changing
                lines.append(f"{path.relative_to(folder).as_posix()}\0gone")
                continue
            lines.append("\0".join(str(v) for v in (
                path.relative_to(folder).as_posix(), stat.S_IFMT(st.st_mode), st.st_size,
                st.st_mtime_ns, st.st_ctime_ns, st.st_ino, target)))
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()
