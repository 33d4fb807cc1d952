"""A centre's dataset fingerprint: a hash of its files, computed where the data lives."""

from __future__ import annotations

import hashlib
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
