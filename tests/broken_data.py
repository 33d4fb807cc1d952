"""Every kind of broken centre a node must refuse, as edits of a sound centre folder, with
the words its one-line refusal must contain (unit and integration tests share them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

RAW = "13/07/2019"  # a raw value planted in a record: it must not be echoed


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _edit(name: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_text("\n".join(change(_rows(path))), encoding="utf-8")
    return apply


def _set_cell(rows: list[str], column: str, value: str, row: int = 3) -> list[str]:
    cells = rows[row].split(",")
    cells[rows[0].split(",").index(column)] = value
    return [*rows[:row], ",".join(cells), *rows[row + 1:]]


def _invalid_utf8(folder: Path) -> None:
    with (folder / "observations.csv").open("ab") as fh:
        fh.write(b"\xff\xfe,\xff\n")


def _link_out(folder: Path) -> None:
    (folder / "elsewhere.csv").symlink_to("/etc/passwd")


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing file": (lambda f: (f / "observations.csv").unlink(), "file missing"),
    "missing column": (_edit("observations.csv", lambda r: [r[0].replace("CODE", "KODE"),
                                                            *r[1:]]), "column CODE missing"),
    "unparseable date": (_edit("observations.csv", lambda r: _set_cell(r, "DATE", RAW)),
                         "rows have an unparseable DATE"),
    "invalid utf-8": (_invalid_utf8, "not valid UTF-8"),
    "ragged row": (_edit("observations.csv", lambda r: [*r[:4], r[4] + ",x,y", *r[5:]]),
                   "more fields than the header"),
    "truncated file": (_edit("observations.csv", lambda r: [*r[:-2], r[-2][:20]]),
                       "(a ragged or truncated row)"),
    "empty patients": (_edit("patients.csv", lambda r: [r[0], ""]), "no patients"),
    "one class only": (_edit("patients.csv", lambda r: [r[0], *(
        _set_cell([r[0], x], "GENDER", "F", 1)[1] for x in r[1:] if x)]),
        "one class of the target"),
    "unknown patient": (_edit("patients.csv", lambda r: [r[0], *r[2:]]),
                        "are not in patients.csv"),
    "link out of the centre": (_link_out, "a link pointing out of the centre folder"),
    # Its first line is then a patient's record: the refusal must not quote it.
    "headerless patients": (_edit("patients.csv", lambda r: r[1:]), "column Id missing"),
}
