"""The `fedjourney` command line. Errors are one line on stderr and exit status REFUSED (2)
(fedjourney/exits.py); `fedjourney logs` exits 1 when nothing matched, as grep does."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedjourney import __version__
from fedjourney.config import DEFAULT_CONFIG, Centre, load_federation, load_raw
from fedjourney.contract import RESEARCHER_CERTIFICATE, node_service
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit

DEFAULT_OUT = Path("data/generated")
# `--write`/`--check` without FILE: the config's own place (host/compose.py layout()).
_DEFAULT_PLACE = Path("<the config's>")
if TYPE_CHECKING:  # what add_subparsers returns: each command adds its own parser to it
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedjourney",
        description="Federated patient-journey simulation on Fed-BioMed.",
    )
    parser.add_argument("--version", action="version", version=f"fedjourney {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_generate, _add_features, _add_vocabulary, _add_prototype, _add_compose,
                _add_kit_fingerprint, _add_logs, _add_run, _add_approve, _add_notebook,
                _add_report, _add_compare):
        add(sub)
    return parser


def _add_generate(sub: Subcommands) -> None:
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
    gen.add_argument("--source", type=Path, metavar="DIR",
                     help="import the one --centre's Synthea CSV output from DIR instead of "
                     "its configured source.folder")


def _add_features(sub: Subcommands) -> None:
    feat = sub.add_parser(
        "features",
        help="build a centre's tensor as a node will, print its summary, save it",
        description="Read CENTRE_FOLDER (as the generator or real Synthea writes it), build "
        "X (N, M, K) with the FeatureSpec and print its summary.",
    )
    feat.add_argument("folder", type=Path, metavar="CENTRE_FOLDER")
    feat.add_argument("--backend", choices=("polars", "tanat"), default="polars")
    feat.add_argument("--spec", type=Path, help="spec file (default: the config's features)")
    feat.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    feat.add_argument("--out", type=Path, metavar="FILE.npz",
                      help="save X, y, patient_ids, feature_names")


def _add_vocabulary(sub: Subcommands) -> None:
    voc = sub.add_parser(
        "vocabulary",
        help="choose the shared vocabulary from centres' aggregate code counts",
        description="With centre folders: print each centre's code counts (small cells "
        "suppressed) or save them with --report. With --merge REPORT...: print the top codes.",
    )
    voc.add_argument("folders", type=Path, nargs="*", metavar="CENTRE_FOLDER")
    voc.add_argument("--merge", type=Path, nargs="+", metavar="REPORT.json", default=[])
    voc.add_argument("--report", type=Path, metavar="FILE.json",
                     help="save the (single) centre's aggregate report")
    voc.add_argument("--top", type=int, default=30)
    voc.add_argument("--min-patients", type=int, default=5)


def _add_prototype(sub: Subcommands) -> None:
    proto = sub.add_parser(
        "prototype",
        help="Stage A: one centre's tensor, then local vs centralised baselines",
        description="Print one centre's tensor as the tutorial does, then train the "
        "experiment's plan with its settings on each centre alone and on all pooled, as "
        "the nodes train it (in the researcher image), and evaluate each on every centre's "
        "held-out patients: the table `fedjourney report` puts beside a run.",
    )
    proto.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    proto.add_argument("--data", type=Path, default=DEFAULT_OUT,
                       help=f"generated data (default: {DEFAULT_OUT}; generated if missing)")
    proto.add_argument("--centre", "--center", default="0", metavar="NAME|ID")
    proto.add_argument("--backend", choices=("polars", "tanat"), default="polars")
    proto.add_argument("--experiment", metavar="NAME",
                       help="a named experiment of the config (default: its training)")
    proto.add_argument("--out", type=Path, default=Path("results/prototype/baselines.json"))


def _add_compose(sub: Subcommands) -> None:
    comp = sub.add_parser(
        "compose",
        help="render docker-compose.yml from the federation config",
        description="Print the compose file for the federation, or write it with --write.",
    )
    comp.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    comp.add_argument("--write", type=Path, nargs="?", const=_DEFAULT_PLACE,
                      metavar="FILE", help="write it and the role views it mounts (default: "
                      "docker-compose.yml and data/roles/; for data/NAME.yaml, data/NAME/)")
    comp.add_argument("--check", type=Path, nargs="?", const=_DEFAULT_PLACE,
                      metavar="FILE", help="exit 2 when FILE or its role views are stale")
    comp.add_argument("--swarm", action="store_true",
                      help="the Docker Swarm stack file instead (`docker stack deploy`; "
                      "default FILE: docker-stack.yml beside the compose file)")
    comp.add_argument("--kit", choices=("site", "researcher"),
                      help="a hospital kit instead: one site's generator and node, dialling "
                      "the researcher's published port through a tunnel that presents the "
                      "site's certificate, the researcher's certificate pinned (with "
                      "--centre), or the researcher behind the gate that publishes its port "
                      "to certified sites only; --write FILE puts its role views in roles/ "
                      "and its certificates in credentials/ beside FILE")
    comp.add_argument("--centre", "--center", metavar="NAME|ID",
                      help="the site of --kit site")
    comp.add_argument("--authority", type=Path, metavar="DIR",
                      help="the credentials/ folder of the researcher's kit, whose "
                      "authority signs the site's certificate (--kit site --write)")


def _add_kit_fingerprint(sub: Subcommands) -> None:
    fing = sub.add_parser(
        "kit-fingerprint",
        help="the SHA-256 fingerprint of the researcher's certificate, for a kit's sites",
        description="Print the SHA-256 fingerprint (of the DER) of a PEM file, or of the "
        "certificate the TLS server at HOST:PORT presents. A site pins the researcher's in "
        "FEDJOURNEY_RESEARCHER_FINGERPRINT: the researcher reads it from its own certificate "
        "file (--pem, in its container) and gives it over another channel. At a kit's "
        "published port the server is the kit's gate: HOST:PORT shows the gate's "
        "certificate, not the researcher's.",
    )
    fing.add_argument("address", nargs="?", metavar="HOST:PORT",
                      help="a TLS server's address (port default 50051)")
    fing.add_argument("--pem", type=Path, metavar="FILE",
                      help="a certificate file instead: the researcher's own is "
                      f"{RESEARCHER_CERTIFICATE} in its container")
    fing.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")


def _add_logs(sub: Subcommands) -> None:
    logs = sub.add_parser(
        "logs",
        help="the story lines of a node (or of every role), filtered, or one timeline",
        description="Story lines from `compose logs` of the stack in this folder (v2 or "
        "1.29), or from a role's log file; exits 1 when nothing matched.",
    )
    logs.add_argument("service", nargs="?", metavar="SERVICE",
                      help="node-0, researcher, ... (default: every role)")
    logs.add_argument("--run", metavar="ID")
    logs.add_argument("--round", type=int, metavar="K")
    logs.add_argument("--since", metavar="WHEN", help="30s, 10m, 2h, 1d or an ISO time (UTC)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--timeline", action="store_true",
                      help="every role's lines merged and ordered by time")
    logs.add_argument("--file", type=Path, metavar="LOG",
                      help="read a role's own log file instead of compose")
    logs.add_argument("-f", "--compose-file", metavar="FILE", help="compose file (compose's "
                      "default: docker-compose.yml here)")
    logs.add_argument("-p", "--project-name", metavar="NAME", help="compose project name")


def _add_run(sub: Subcommands) -> None:
    run = sub.add_parser(
        "run",
        help="one experiment of the federation: build the images if stale, run, results",
        description="Build the images when missing or stale, start the stack (each "
        "centre's data generation reported as it ends), show every role's story, wait for "
        "the researcher, copy the results to results/<run-id>/ with their baselines, and "
        "exit with the researcher's status (0 finished, 2 could not start, 3 a round "
        "failed); 2 before anything starts, 1 when the images or the stack fail. Run it "
        "from the repository's root (scripts/run does).",
    )
    run.add_argument("--keep", action="store_true",
                     help="the nodes stay up afterwards (inspection, more experiments)")
    run.add_argument("--again", action="store_true",
                     help="another experiment on the kept nodes: no data generation, no "
                     "node restart")
    run.add_argument("--experiment", default="", metavar="NAME",
                     help="one of the config's named experiments (`experiments:`) instead "
                     "of its `training` section")
    run.add_argument("--resume", default="", metavar="RUN_ID",
                     help="continue a run whose researcher stopped from its last completed "
                     "round (results/<run-id>, or the run= of its log lines)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                     help="another federation, e.g. data/study.yaml (its compose file is its "
                     "own compose project)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show the raw build output and Fed-BioMed's own log lines too "
                     "(as FEDJOURNEY_VERBOSE=1)")


def _add_approve(sub: Subcommands) -> None:
    appr = sub.add_parser(
        "approve",
        help="approve a training plan on running nodes (a hospital administrator's step)",
        description="Approve PLAN on the running node of each centre named, in "
        "Fed-BioMed's own approval registry, as a hospital's administrator would; the "
        "node's story records the plan's hash and when. Nodes run when kept "
        "(`scripts/run --keep`). Plans a centre always approves belong in its "
        "`approved_plans` instead. Exit 0 when every node approved it.",
    )
    appr.add_argument("plan", nargs="?", default=None, metavar="PLAN",
                      help="a shipped plan (mlp, logistic, gru), a plan the config names (by "
                      "its file name) or a .py file; default: the config's training.plan")
    who = appr.add_mutually_exclusive_group(required=True)
    who.add_argument("--centre", action="append", metavar="NAME|ID",
                     help="the centre whose node approves it (repeatable)")
    who.add_argument("--all", action="store_true", help="every centre of the config")
    appr.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                      help="the federation the nodes run (its compose project)")
    appr.add_argument("--compose-file", type=Path, default=None, metavar="FILE",
                      help="the compose file the nodes run from, when not the config's own "
                      "(COMPOSE_PROJECT_NAME is honoured)")


def _add_notebook(sub: Subcommands) -> None:
    note = sub.add_parser(
        "notebook",
        help="JupyterLab as the researcher, against the federation's kept nodes",
        description="Start the federation's nodes (kept) and JupyterLab in a container of "
        "the researcher's image that answers to them as `researcher`, on 127.0.0.1 only, "
        "with a token (FEDJOURNEY_NOTEBOOK_TOKEN, or a new one); print its address. "
        "notebooks/ holds the shipped notebooks (docs/own-model.md).",
    )
    note.add_argument("--down", action="store_true",
                      help="stop the notebook (the nodes stay up)")
    note.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                      help="another federation, e.g. data/study.yaml")


def _add_report(sub: Subcommands) -> None:
    rep = sub.add_parser(
        "report",
        help="write a run's local-only and centralised baselines to its baselines.md",
    )
    rep.add_argument("run_dir", type=Path, metavar="RESULTS/RUN_ID")
    rep.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    rep.add_argument("--data", type=Path, default=Path(".cache/baseline-data"),
                     help="where the host regenerates the centres for the baselines")
    rep.add_argument("--baselines", type=Path, default=Path("results/prototype/baselines.json"))


def _add_compare(sub: Subcommands) -> None:
    cmp_ = sub.add_parser(
        "compare",
        help="finished runs side by side: settings, timings, final AUC per centre, curves",
        description="Print one table row per finished run and draw their validation AUC "
        "curves side by side in a PNG.",
    )
    cmp_.add_argument("run_dirs", type=Path, nargs="*", metavar="RUN_DIR",
                      help="results/<run-id>/ (at least one)")
    cmp_.add_argument("--png", type=Path, default=Path("compare.png"), metavar="FILE",
                      help="the learning curves (default: compare.png)")


def _progress(centre: Centre, done: int, total: int) -> None:
    sys.stderr.write(f"\r  {centre.folder_name} {centre.name}: {done}/{total} patients")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _generate(args: argparse.Namespace) -> int:
    from fedjourney.generator import generate

    fed = load_federation(args.config)
    if fed.view == "researcher":
        raise FedjourneyError(f"{args.config} is the researcher's view of the federation, "
                              "which does not say how centres are drawn; use the full config")
    centres = [fed.centre(key) for key in args.centre] if args.centre else None
    tty = sys.stderr.isatty()
    started = time.perf_counter()
    results = generate(fed, args.out, centres=centres, force=args.force, engine=args.engine,
                       synthea_jar=args.synthea_jar, progress=_progress if tty else None,
                       source_override=args.source)
    for r in results:
        detail = (f"{r.rows.get('patients', 0)} patients, "
                  f"{r.rows.get('observations', 0)} observations") if r.rows else "up to date"
        print(f"{r.status:>11}  {r.folder}  ({detail})")
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def _features(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from fedjourney.features import build, load_spec

    spec = load_spec(args.spec) if args.spec else load_federation(args.config).feature_spec()
    fs = build(args.folder, spec, args.backend)
    print(json.dumps({"folder": str(args.folder), "backend": args.backend,
                      "spec": spec.fingerprint(), **fs.summary()}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".partial.npz")
        np.savez_compressed(tmp, X=fs.X, y=fs.y, patient_ids=fs.patient_ids,
                            feature_names=np.array(fs.feature_names))
        tmp.replace(args.out)
        print(f"saved {args.out}")
    return 0


def _vocabulary(args: argparse.Namespace) -> int:
    import json

    from fedjourney.features.vocabulary import code_counts, load_report, top_codes

    if args.report:
        if len(args.folders) != 1:
            raise FedjourneyError("--report takes exactly one CENTRE_FOLDER")
        report = {"centre_folder": args.folders[0].name, "min_patients": args.min_patients,
                  "codes": code_counts(args.folders[0], args.min_patients)}
        args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"saved {args.report} ({len(report['codes'])} codes)")
        return 0
    reports = [code_counts(f, args.min_patients) for f in args.folders]
    reports += [load_report(p) for p in args.merge]
    if not reports:
        raise FedjourneyError("give CENTRE_FOLDERs or --merge REPORT.json files")
    codes = top_codes(reports, args.top)
    print("vocabulary: [" + ", ".join(f'"{c}"' for c in codes) + "]")
    return 0


def _prototype(args: argparse.Namespace) -> int:
    from fedjourney.generator import generate
    from fedjourney.prototype import run_prototype

    fed = load_federation(args.config)
    focus = fed.centre(args.centre)
    fed.feature_spec()  # fail before generating anything when the config has none
    fed.experiment(args.experiment)  # likewise for an unknown experiment
    for r in generate(fed, args.data):
        print(f"{r.status:>11}  {r.folder}")
    run_prototype(fed, args.config, args.data, focus, args.experiment, args.backend, args.out)
    return 0


def _compose(args: argparse.Namespace) -> int:
    from fedjourney.host import compose, swarm

    if args.kit or args.centre is not None or args.authority is not None:
        return _kit(args)
    fed = load_federation(args.config)
    raw = load_raw(args.config)
    given = args.check or args.write
    rendering = swarm if args.swarm else compose
    where = rendering.layout(args.config, None if given is _DEFAULT_PLACE else given)
    if args.check:
        wrong = compose.stale(fed, raw, where, rendering.render)
        if wrong:
            how = f" --swarm --write {where.path}" if args.swarm else " --write"
            raise FedjourneyError(f"{', '.join(wrong)} do(es) not match {args.config}; run "
                                  f"fedjourney compose --config {args.config}{how}")
        print(f"{where.path} and its role views match {args.config}")
    elif args.write:
        where.path.parent.mkdir(parents=True, exist_ok=True)
        compose.write(fed, raw, where, rendering.render)
        print(f"wrote {where.path} and {where.roles_dir}/ ({len(fed.centres)} centres)")
    else:
        sys.stdout.write(rendering.render(fed))
    return 0


def _kit(args: argparse.Namespace) -> int:
    from fedjourney.host import credentials, kit

    if args.kit is None:
        raise FedjourneyError("--centre and --authority go with --kit site")
    if args.swarm or args.check:
        raise FedjourneyError("--kit takes neither --swarm nor --check")
    if args.write is _DEFAULT_PLACE:
        raise FedjourneyError("--kit needs --write FILE: a kit goes to a site, not into "
                              "this repository")
    if (args.kit == "site") != (args.centre is not None):
        raise FedjourneyError("--kit site needs --centre NAME|ID; --kit researcher takes none")
    if args.kit == "researcher" and args.authority is not None:
        raise FedjourneyError("--authority goes with --kit site: the researcher's kit makes "
                              "the authority")
    if args.kit == "site" and args.write and args.authority is None:
        raise FedjourneyError("--kit site --write needs --authority DIR: the credentials/ "
                              "folder of the researcher's kit (`--kit researcher --write "
                              "FILE` makes it), whose authority signs the site's certificate")
    fed = load_federation(args.config)
    if fed.view is not None:
        raise FedjourneyError(f"{args.config} is the {fed.view} view of the federation; "
                              "render a kit from the full config")
    scheduled = [x for x in fed.centres if x.schedule]
    if scheduled:  # its relay's control port is at the hospital, out of the researcher's reach
        raise FedjourneyError(f"{args.config}: centre {scheduled[0].id} has a schedule, which "
                              "a hospital kit cannot carry out (the researcher reaches no "
                              "site's relay); remove `schedule:` for kits, or rehearse it with "
                              "`docker compose up` or Swarm")
    raw = load_raw(args.config)
    if args.kit == "site":
        centre = fed.centre(args.centre)
        text, role_views = kit.site(fed, centre), kit.site_views(raw, fed, centre)
        plans = kit.site_plans(centre)
        what = f"site kit of centre {centre.id} ({centre.name})"
        if args.write:
            # Before anything is written: a wrong folder leaves no half kit behind.
            credentials.Authority.load(args.authority)
    else:
        text, role_views = kit.researcher(fed), kit.researcher_views(raw, fed)
        plans = kit.researcher_plans(fed)
        what = f"researcher kit ({len(fed.centres)} centres)"
    if not args.write:
        sys.stdout.write(text)
        return 0
    folder = args.write.parent
    folder.mkdir(parents=True, exist_ok=True)
    # The certificates first, the compose file last: a kit with a compose file is whole.
    if args.kit == "site":
        made = credentials.site(folder, args.authority, node_service(centre.id))
    else:
        made = credentials.researcher(folder, fed.name)
    kit.write(text, role_views, args.write, results=args.kit == "researcher", plans=plans)
    print(f"wrote {args.write}, {folder / kit.ROLES}/ and {made}/ ({what})")
    return 0


def _kit_fingerprint(args: argparse.Namespace) -> int:
    import ssl

    from fedjourney import contract, settings
    from fedjourney.node import pinning

    if (args.address is None) == (args.pem is None):
        raise FedjourneyError("give HOST:PORT or --pem FILE")
    try:
        if args.pem is not None:
            where, pem = f"of {args.pem}", args.pem.read_text(encoding="ascii")
        else:
            host, port = pinning.parse_address(args.address, contract.RESEARCHER_PORT)
            where = f"that {host}:{port} presents"
            pem = pinning.fetch(host, port, args.timeout)
        print(pinning.fingerprint(pem))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise FedjourneyError(f"no certificate from {args.pem or args.address}: {exc}") from exc
    print(f"kit-fingerprint: the sha256 of the certificate {where}, for the sites' "
          f"{settings.RESEARCHER_FINGERPRINT.env}. Compare the researcher's own "
          f"({RESEARCHER_CERTIFICATE} in its container) with what each site sees, over "
          "another channel than this network", file=sys.stderr)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from fedjourney.host import logs

    filters = logs.Filters(args.service, args.run, args.round, args.since)
    if args.file is not None:
        if args.follow:
            raise FedjourneyError("--follow reads compose logs; use `tail -f` on a --file")
        lines = logs.file_lines(args.file)
    else:
        compose = [*logs.compose_command(),
                   *(["-f", args.compose_file] if args.compose_file else []),
                   *(["-p", args.project_name] if args.project_name else [])]
        # A timeline merges every role: filter by service after reading them all.
        lines = logs.compose_lines(compose, None if args.timeline else args.service,
                                   args.follow)
    records = logs.select(lines, filters)
    if args.timeline:
        records = iter(logs.timeline(records))
    shown = 0
    for record in records:
        print(record.line, flush=args.follow)
        shown += 1
    if shown == 0:
        print(f"fedjourney logs: no story line matched ({logs.describe(filters)})",
              file=sys.stderr)
        return 1
    return 0


def _approve(args: argparse.Namespace) -> int:
    from fedjourney.host import approve, compose

    fed = load_federation(args.config)
    centres = list(fed.centres) if args.all else [fed.centre(c) for c in args.centre]
    return approve.approve(args.compose_file or compose.layout(args.config).path,
                           centres, approve.plan_named(fed, args.plan))


def _notebook(args: argparse.Namespace) -> int:
    from fedjourney import settings
    from fedjourney.host import notebook

    return notebook.main(args.config, args.down, build=not settings.IMAGES_PREBUILT.read())


def _run(args: argparse.Namespace) -> int:
    from fedjourney import settings
    from fedjourney.host import run

    return run.main(run.Options(
        config=args.config, keep=args.keep, again=args.again, experiment=args.experiment,
        resume=args.resume, verbose=args.verbose or settings.VERBOSE.read(),
        build=not settings.IMAGES_PREBUILT.read()))


def _report(args: argparse.Namespace) -> int:
    from fedjourney.host.report import report

    path = report(load_federation(args.config), args.config, args.run_dir, args.data,
                  args.baselines)
    print(path.read_text(), end="")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from fedjourney.host.compare import compare

    print(compare(args.run_dirs, args.png), end="")
    print(f"wrote {args.png} (validation AUC per round, one plot per run)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedjourney` command."""
    args = _parser().parse_args(argv)
    commands = {"generate": _generate, "features": _features, "vocabulary": _vocabulary,
                "prototype": _prototype, "compose": _compose, "logs": _logs,
                "report": _report, "run": _run, "approve": _approve, "notebook": _notebook,
                "compare": _compare,
                "kit-fingerprint": _kit_fingerprint}
    try:
        return commands[args.command](args)
    except FedjourneyError as exc:
        print(f"fedjourney: error: {exc}", file=sys.stderr)
        return Exit.REFUSED
    except KeyboardInterrupt:
        print("fedjourney: interrupted; nothing half-written was kept", file=sys.stderr)
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
