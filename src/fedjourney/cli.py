"""The `fedjourney` command line. Errors are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fedjourney import __version__
from fedjourney.config import DEFAULT_CONFIG, Centre, load_federation
from fedjourney.errors import FedjourneyError

DEFAULT_OUT = Path("data/generated")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedjourney",
        description="Federated patient-journey simulation on Fed-BioMed.",
    )
    parser.add_argument("--version", action="version", version=f"fedjourney {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help="write each centre's synthetic patients in Synthea's CSV format",
        description="Write DIR/center_<id>/ for each centre of the federation config. "
        "Complete centres are skipped unless --force.",
    )
    gen.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                     help=f"federation config (default: {DEFAULT_CONFIG})")
    gen.add_argument("--out", type=Path, default=DEFAULT_OUT,
                     help=f"output folder (default: {DEFAULT_OUT})")
    gen.add_argument("--centre", "--center", action="append", metavar="NAME|ID",
                     help="only this centre (repeatable)")
    gen.add_argument("--force", action="store_true", help="regenerate complete centres")
    gen.add_argument("--engine", choices=("builtin", "synthea", "auto"), default="builtin",
                     help="builtin (offline, default), synthea (needs a JAR), or auto")
    gen.add_argument("--synthea-jar", metavar="FILE",
                     help="Synthea JAR for --engine synthea/auto (or $FEDJOURNEY_SYNTHEA_JAR)")
    return parser


def _progress(centre: Centre, done: int, total: int) -> None:
    sys.stderr.write(f"\r  {centre.folder_name} {centre.name}: {done}/{total} patients")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _generate(args: argparse.Namespace) -> int:
    from fedjourney.generator import generate

    fed = load_federation(args.config)
    centres = [fed.centre(key) for key in args.centre] if args.centre else None
    tty = sys.stderr.isatty()
    started = time.perf_counter()
    results = generate(fed, args.out, centres=centres, force=args.force, engine=args.engine,
                       synthea_jar=args.synthea_jar, progress=_progress if tty else None)
    for r in results:
        detail = (f"{r.rows.get('patients', 0)} patients, "
                  f"{r.rows.get('observations', 0)} observations") if r.rows else "up to date"
        print(f"{r.status:>11}  {r.folder}  ({detail})")
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedjourney` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
    except FedjourneyError as exc:
        print(f"fedjourney: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedjourney: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
