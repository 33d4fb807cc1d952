"""A table generated into a documentation page, between two marker lines, from its one
source in the code (fedjourney/settings.py, fedjourney/exits.py); a test checks each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from fedjourney.errors import FedjourneyError


def with_block(page: str, begin: str, end: str, table: str) -> str:
    """The page with the block between its marker lines replaced by table."""
    if begin not in page or end not in page:
        raise FedjourneyError(f"the page has no generated block; add the lines {begin!r} and "
                              f"{end!r} where the table goes")
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}{end}{tail}"


def main(argv: list[str] | None, prog: str, what: str,
         with_table: Callable[[str], str], table: Callable[[], str]) -> int:
    """Print the table, or --write/--check it into a page; errors in one line, status 2."""
    parser = argparse.ArgumentParser(prog=prog, description=f"print, write or check {what}")
    parser.add_argument("--write", type=Path, metavar="PAGE",
                        help="replace the generated block of PAGE with the current table")
    parser.add_argument("--check", type=Path, metavar="PAGE",
                        help="exit 2 when PAGE's generated block is not the current table")
    args = parser.parse_args(argv)
    try:
        page = args.write or args.check
        if page is None:
            sys.stdout.write(table())
            return 0
        text = page.read_text(encoding="utf-8")
        new = with_table(text)
        if args.check:
            if new != text:
                raise FedjourneyError(f"{page}'s {what} is stale; run {prog} --write {page}")
            return 0
        page.write_text(new, encoding="utf-8")
        return 0
    except (OSError, FedjourneyError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
