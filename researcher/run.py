"""The researcher container's command: wait for every centre's node, run FedAverage round by
round, write results/<run-id>/ atomically.

Exit status (fedjourney/exits.py): OK when the run finished and its results are complete;
REFUSED for a bad setting, experiment or run id; NOT_READY when a node never came, cannot
serve or disagrees (the centres are named); FAILED when Fed-BioMed could not set the
experiment up; ROUND_FAILED when a round failed or overran its deadline (the nodes concerned
are named). Every exit leaves `<results>/.ended` (run id and status) for the results
collector.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import contract, records, settings, startup
from fedjourney.config import DEFAULT_EXPERIMENT, Federation, Training, load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.planfile import sent_source
from fedjourney.researcher import checkpoint, experiment, heterogeneity, results
from fedjourney.researcher.arrivals import Arrivals
from fedjourney.researcher.curves import Curves
from fedjourney.researcher.experiment import Metrics, bound_rounds
from fedjourney.researcher.outages import PING_TIMEOUT_S, Outages, online
from fedjourney.story import Story, quiet_fedbiomed, setup

COMPONENT = Path(contract.STATE) / "researcher"
RESULTS = Path(contract.RESULTS)
HEALTH = Path(contract.HEALTH)
WATCHDOG_GRACE_S = 60
BROKEN_GRACE_S = 10  # after a node reports broken data, for the others to answer too
SEARCH_AGAIN_S = 5.0  # every node that has not answered is asked again this often
ASK_AGAIN_S = 0.2  # a node that connected but was not yet filed by the server...
FRESH_S = 2.0  # ...is asked again that often for this long


@dataclass(frozen=True)
class ResearcherSettings:
    """What the researcher reads at start: its role's view of the config and its
    environment (fedjourney/settings.py)."""

    config_path: Path
    fed: Federation
    run_id: str
    experiment: str
    resume: bool
    verbose: bool
    node_deadline_s: float
    round_deadline_override_s: float | None  # else the experiment's own

    def round_deadline_s(self, t: Training) -> float:
        return self.round_deadline_override_s or t.round_deadline_s

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> ResearcherSettings:
        """FedjourneyError naming the setting."""
        config_path = Path(settings.CONFIG.raw(environ))
        fed = load_federation(config_path)
        try:
            run_id = contract.check_run_id(settings.RUN_ID.raw(environ)
                                           or contract.new_run_id())
        except ValueError as exc:
            raise FedjourneyError(f"{exc}; set {settings.RUN_ID.env} to a valid one") from None
        node_s: float | None = settings.NODE_DEADLINE.read(environ)
        return cls(config_path, fed, run_id,
                   settings.EXPERIMENT.raw(environ) or DEFAULT_EXPERIMENT,
                   settings.RESUME.read(environ), settings.VERBOSE.read(environ),
                   node_s or fed.training.node_deadline_s,
                   settings.ROUND_DEADLINE.read(environ))


class Stop(Exception):
    """A phase of the run cannot go on; its story line is said, the status is given."""

    def __init__(self, status: Exit) -> None:
        super().__init__(status.name)
        self.status = status


def main() -> int:
    HEALTH.unlink(missing_ok=True)
    (RESULTS / contract.RUN_ENDED).unlink(missing_ok=True)  # an earlier run's
    try:
        s = ResearcherSettings.load(os.environ)
    except FedjourneyError as exc:
        print(f"fedjourney: error: {exc}", file=sys.stderr)
        _mark_ended(settings.RUN_ID.raw(os.environ), Exit.REFUSED)
        return Exit.REFUSED
    story = setup(contract.RESEARCHER, Path(contract.story_log("researcher")),
                  s.verbose).at(s.run_id)
    status = Exit.FAILED
    try:
        status = _run(s, story)
    except Stop as stop:
        status = stop.status
    finally:
        _mark_ended(s.run_id, status)
    return status


def _run(s: ResearcherSettings, story: Story) -> Exit:
    """The run, phase by phase; Stop ends it early with its status."""
    started = time.monotonic()
    t, progress, partial = _prepared(s, story)
    requests = serve(story, s.verbose)
    if requests is None:
        raise Stop(Exit.NOT_READY)
    HEALTH.write_text("researcher: server listening\n", encoding="utf-8")
    found = _ready_federation(s, t, progress, requests, story)
    names = {node_id: rec.label for node_id, rec in found.items()}
    fingerprints = _fingerprints(found)
    story.info(f"all {len(found)} nodes answered after {time.monotonic() - started:.1f}s: "
               + ", ".join(sorted(names.values())))
    logging.getLogger("fedbiomed").addHandler(_NodeRefusals(story))
    metrics = Metrics()
    exp, progress = _experiment(s, t, progress, fingerprints, metrics, story)
    _plan_approved(exp, t, found, story)
    startup.done()
    spent = progress.seconds - (time.monotonic() - started)  # earlier attempts' time
    curves = Curves(partial / records.TENSORBOARD, names)
    curves.update(metrics, progress.rounds_done)  # a resumed run's earlier rounds
    outages = Outages(s.fed, {rec.centre_id: node_id for node_id, rec in found.items()},
                      started=exp.model_args().get("run_started"))
    try:
        _rounds(s, t, exp, progress, metrics, requests, names, story,
                lambda: spent + time.monotonic() - started, curves, outages)
    finally:
        outages.restore_all(story)
    curves.close()
    seconds = spent + time.monotonic() - started
    _write_results(s, t, exp, progress, metrics, names, found, partial, seconds, story)
    return Exit.OK


class _NodeRefusals(logging.Handler):
    """A node's refusal of a request (its data-use policy: node/rules.py) reaches the
    researcher as a Fed-BioMed error reply, which Fed-BioMed only logs: told in the story,
    in the node's own words, before the round fails for the missing node."""

    def __init__(self, story: Story) -> None:
        super().__init__(logging.WARNING)
        self.story = story

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if contract.NODE_REFUSED in message:
            self.story.error(" ".join(message[message.index(contract.NODE_REFUSED):]
                                      .splitlines()))


def _prepared(s: ResearcherSettings, story: Story
              ) -> tuple[Training, checkpoint.Progress | None, Path]:
    """The experiment, the run's progress when resuming, and its empty partial folder."""
    try:
        t = s.fed.experiment(s.experiment)
    except FedjourneyError as exc:
        story.error(f"FAILED: {exc}")
        raise Stop(Exit.REFUSED) from None
    try:
        # The plan's code as the nodes will receive it runs here first: a module the images
        # lack, or a class that needs what stays behind in its file, stops the run now.
        sent_source(t.plan)
    except FedjourneyError as exc:
        story.error(f"FAILED: {exc}")
        raise Stop(Exit.REFUSED) from None
    progress = checkpoint.load(s.run_id)
    refusal = _cannot_start(s.run_id, s.resume, progress,
                            checkpoint.config_digest(s.config_path, s.experiment))
    if refusal:
        story.error(f"FAILED: {refusal}")
        raise Stop(Exit.REFUSED)
    partial = RESULTS / contract.partial_results(s.run_id)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    spec = s.fed.feature_spec()
    story.info(f"run {s.run_id}: experiment {s.experiment} ({results.settings(t.describe())}), "
               f"{len(s.fed.centres)} centres, {t.rounds} rounds, spec {spec.fingerprint()}"
               + (f"; resuming after round {progress.rounds_done}" if progress else ""))
    return t, progress, partial


def _ready_federation(s: ResearcherSettings, t: Training,
                      progress: checkpoint.Progress | None, requests: Any, story: Story
                      ) -> dict[str, contract.DatasetRecord]:
    """Every centre's node, answering with sound data, the same FeatureSpec and a stance
    that accepts this experiment (and, when resuming, the same data as before)."""
    found = wait_for_nodes(requests, s.fed, s.node_deadline_s, story)
    if found is None:
        raise Stop(Exit.NOT_READY)
    claims = false_claims(found, s.fed)
    if claims:
        story.error(f"REFUSED: {claims}")
        raise Stop(Exit.NOT_READY)
    spec = s.fed.feature_spec()
    others = sorted(r.label for r in found.values() if r.spec_fingerprint != spec.fingerprint())
    if others:  # they would refuse the tasks anyway: say why now
        story.error(f"FAILED: {', '.join(others)} approved another FeatureSpec than this run's "
                    f"{spec.fingerprint()}: the federation config differs; see `docker compose "
                    "logs` of those nodes")
        raise Stop(Exit.NOT_READY)
    stances = _stance_conflicts(found.values(), t)
    if stances:
        story.error(f"FAILED: {stances}; see `docker compose logs` of those nodes")
        raise Stop(Exit.NOT_READY)
    refused = _policy_conflicts(s.fed, t, found.values())
    if refused:
        story.error(f"REFUSED: {refused}")
        raise Stop(Exit.REFUSED)
    fingerprints = _fingerprints(found)
    if progress and progress.fingerprints != fingerprints:
        changed = sorted(k for k in fingerprints if progress.fingerprints.get(k) !=
                         fingerprints[k])
        story.error(f"FAILED: cannot resume run {s.run_id}: the data of {', '.join(changed)} "
                    "changed since it began; start a new run")
        raise Stop(Exit.REFUSED)
    return found


def _experiment(s: ResearcherSettings, t: Training, progress: checkpoint.Progress | None,
                fingerprints: dict[str, str], metrics: Metrics, story: Story
                ) -> tuple[Any, checkpoint.Progress]:
    """Fed-BioMed's Experiment, new or resumed from its breakpoint, and the run's progress."""
    bound_rounds(int(s.round_deadline_s(t)))
    try:
        if progress:
            exp = experiment.resume(progress.breakpoint, metrics)
            progress.restore(metrics)
            progress.resumed_after.append(progress.rounds_done)
            return exp, progress
        from fedjourney.researcher.strategy import AtLeast

        exp = experiment.build(s.fed, t, s.run_id, metrics,
                               AtLeast(t.min_nodes or len(s.fed.centres)))
        return exp, checkpoint.Progress(
            s.run_id, checkpoint.config_digest(s.config_path, s.experiment), fingerprints)
    except SystemExit as stop:
        story.error(f"FAILED: the experiment could not be set up (Fed-BioMed exit {stop.code})")
        raise Stop(Exit.FAILED) from None


def _plan_approved(exp: Any, t: Training, found: dict[str, contract.DatasetRecord],
                   story: Story) -> None:
    """Stop(NOT_READY) before round 1, one line per centre, unless every node approved the
    plan (Fed-BioMed's status request)."""
    from fedjourney.planfile import plan_hash
    from fedjourney.researcher.approval import refusals

    digest = plan_hash(exp.training_plan().source())
    lines = refusals(exp.check_training_plan_status(), found, t.plan, digest)
    for line in lines:
        story.error(f"FAILED: {line}")
    if lines:
        raise Stop(Exit.NOT_READY)
    story.info(f"every node approved plan {t.plan.name} (sha256 {digest[:16]})")


def _rounds(s: ResearcherSettings, t: Training, exp: Any, progress: checkpoint.Progress,
            metrics: Metrics, requests: Any, names: dict[str, str], story: Story,
            elapsed: Callable[[], float], curves: Curves, outages: Outages) -> None:
    """The remaining rounds, each checkpointed and drawn (TensorBoard), the centres'
    scheduled outages carried out before each; Stop(ROUND_FAILED) when one fails."""
    strategy = exp.strategy()
    min_nodes = t.min_nodes or len(s.fed.centres)
    for r in range(progress.rounds_done + 1, t.rounds + 1):
        metrics.round = r
        said = story.at(s.run_id, r)
        try:
            outages.before(r, requests, s.node_deadline_s, said)
        except FedjourneyError as exc:
            said.error(f"FAILED: the schedule could not be carried out: {exc}")
            raise Stop(Exit.FAILED) from None
        # A backstop: late nodes are left out at the deadline; this ends a round that
        # still does not return (aggregation, a wedged transport).
        watchdog = _watchdog(s.round_deadline_s(t) + WATCHDOG_GRACE_S, s.run_id, said,
                             requests, names)
        begun = time.monotonic()
        try:
            exp.run_once(test_after=r == t.rounds)
        except SystemExit as stop:  # Fed-BioMed exits on a failed round (FB402, FB408...)
            watchdog.cancel()
            said.error(
                f"FAILED: round {r} (Fed-BioMed exit {stop.code}): "
                f"{_dropped(strategy.dropped.get(r - 1, {}), names) or 'no node answered'}; "
                f"at least {min_nodes} needed; node states: {_node_states(requests, names)}")
            raise Stop(Exit.ROUND_FAILED) from None
        watchdog.cancel()
        progress.round_seconds[r] = time.monotonic() - begun
        progress.took_part[r] = strategy.aggregated(r - 1)
        progress.dropped[r] = outages.annotated(strategy.dropped.get(r - 1, {}), r)
        progress.rounds_done, progress.breakpoint = r, experiment.breakpoint_folder(exp)
        progress.seconds = elapsed()
        progress.record(metrics)
        checkpoint.save(progress)
        curves.update(metrics, r)
        dropped = _dropped(progress.dropped[r], names)
        said.info(f"round {r}/{t.rounds} aggregated in {progress.round_seconds[r]:.2f}s"
                  + (f" without {dropped}" if dropped else ""))


def _write_results(s: ResearcherSettings, t: Training, exp: Any,
                   progress: checkpoint.Progress, metrics: Metrics, names: dict[str, str],
                   found: dict[str, contract.DatasetRecord], partial: Path, seconds: float,
                   story: Story) -> None:
    """results/<run-id>/, complete or not there at all; the final model per centre said."""
    rows = results.metric_rows(s.run_id, t.rounds, metrics, exp.training_replies(), names,
                               progress.round_seconds, progress.took_part)
    spec = s.fed.feature_spec()
    fingerprints = progress.fingerprints  # the nodes' records' (checked equal on resume)
    records.write_rows(partial, rows)
    exp.training_plan().export_model(str(partial / records.MODEL))
    results.learning_curve(rows, partial / records.LEARNING_CURVE)
    shutil.copy(s.config_path, partial / records.FEDERATION)
    spec.dump(partial / records.FEATURE_SPEC)
    records.write_fingerprints(partial, fingerprints)
    described = {"name": s.experiment, **t.describe()}
    privacy = _privacy(t, rows, len(progress.resumed_after), found.values())
    missed = _missed(progress.dropped, names)
    (partial / records.SUMMARY).write_text(results.summary_markdown(
        s.run_id, rows, fingerprints, seconds, progress.resumed_after, described, privacy,
        heterogeneity.report(list(found.values())), missed))
    records.write_run(partial, records.RunRecord(
        run_id=s.run_id, seconds=round(seconds, 2), rounds=t.rounds,
        round_seconds=progress.round_seconds, spec_fingerprint=spec.fingerprint(),
        experiment=described, privacy=privacy or None,
        resumed_after=progress.resumed_after, missed=missed, status=records.FINISHED))
    partial.rename(RESULTS / s.run_id)  # complete, or not there at all
    checkpoint.forget(s.run_id)
    story.info(f"results written to results/{s.run_id}/ ({seconds:.1f}s in all)")
    for node, m in results.final_table(rows).items():
        story.info(f"final model on {node}: " + (
            "validation metrics withheld (the centre's posture under secure aggregation)"
            if m.validation_withheld else
            f"AUC {results.fmt(m.validation_auc)}, "
            f"accuracy {results.fmt(m.validation_accuracy)}"))


def _fingerprints(found: dict[str, contract.DatasetRecord]) -> dict[str, str]:
    """Each node's dataset fingerprint, by its label."""
    return {rec.label: rec.fingerprint for rec in found.values()}


def _stance_conflicts(found: Any, t: Training) -> str:
    """The centres whose own secure-aggregation stance refuses this experiment, or ""."""
    wrong = [f"{r.label} {'requires' if r.secure_aggregation == 'required' else 'refuses'} "
             "secure aggregation" for r in sorted(found, key=lambda r: r.centre_id)
             if (r.secure_aggregation == "required" and t.secagg == "off")
             or (r.secure_aggregation == "refused" and t.secagg != "off")]
    if not wrong:
        return ""
    fix = ("run an experiment with secagg" if t.secagg == "off"
           else "run one without secagg")
    return f"{'; '.join(wrong)} (this experiment: secagg {t.secagg}); {fix}"


def false_claims(found: dict[str, contract.DatasetRecord], fed: Federation) -> str:
    """The nodes whose records claim a centre another node also claims, or one the
    federation does not have, named by their Fed-BioMed node ids; "" when every centre has
    one node. Nothing tells which of two claimants is the hospital's own, so the run stops
    rather than send the model to both (docs/threat-model.md: nodes are not authenticated)."""
    known = {contract.node_service(c.id) for c in fed.centres}
    by_centre: dict[str, list[str]] = {}
    for node_id, record in sorted(found.items()):
        by_centre.setdefault(record.label, []).append(node_id)
    said = [f"{len(ids)} nodes claim {label} ({', '.join(ids)})"
            for label, ids in sorted(by_centre.items()) if len(ids) > 1]
    said += [f"node {node_id} claims {record.label}, which is not a centre of this federation"
             for node_id, record in sorted(found.items()) if record.service not in known]
    if not said:
        return ""
    return "; ".join(said) + ("; stop the node that is not the hospital's own, then run "
                              "again")


def _policy_conflicts(fed: Federation, t: Training, found: Any) -> str:
    """What the centres' own data-use policies, as their nodes publish them, refuse of this
    experiment (each node would refuse its first request: policy.refusals), and the
    centres whose budget this run would pass, composed with the ledger each publishes; ""
    when none does. A resumed run counts its earlier rounds twice (the ledger holds them
    already): it errs on the patients' side."""
    from fedjourney.policy import Policy, experiment_refusals, training_patients

    ordered = sorted(found, key=lambda r: r.centre_id)
    stated = [(r.label, Policy.from_dict(r.policy), t.held_out_percent) for r in ordered]
    refused = experiment_refusals(fed, t, stated)
    if t.dp:
        from fedjourney.researcher.privacy import epsilon

        for record, (label, policy, held_out) in zip(ordered, stated, strict=True):
            budget = policy.epsilon_budget
            n_train = training_patients(record.patients, held_out)
            if budget is None or not n_train:
                continue
            before = epsilon(t.dp, t.batch_size, t.epochs, t.num_updates, [],
                             record.privacy_spent, policy.delta)
            after = epsilon(t.dp, t.batch_size, t.epochs, t.num_updates,
                            [n_train] * t.rounds, record.privacy_spent, policy.delta)
            if after > budget:
                refused.append(f"{label} refuses {t.rounds} rounds of DP-SGD that would bring "
                               f"the epsilon spent on its data to {after:.3g} (delta "
                               f"{policy.delta:g}; {before:.3g} before this run), over its "
                               f"budget of {budget:g} (policy.epsilon_budget)")
    if not refused:
        return ""
    return (f"{'; '.join(refused)}; change the experiment, or ask the hospital to change "
            "its policy")


def _privacy(t: Training, rows: list[records.MetricRow], resumes: int,
             found: Any = ()) -> dict[str, Any]:
    """Local DP's epsilon per centre, counting every round it was asked to train (and, per
    resume, one more: the interrupted round may have trained twice); and, from each node's
    record, the epsilon spent on that centre's data over every run once this one is added
    (its ledger as the run began, composed with this run's rounds, at the centre's delta),
    with its budget."""
    if not t.dp:
        return {}
    from fedjourney.policy import Policy
    from fedjourney.researcher.privacy import epsilon

    by_label = {r.label: r for r in found}
    per_centre, totals = {}, {}
    for node in sorted({r.node for r in rows}):
        sizes = [r.samples for r in rows if r.node == node and not r.final]
        known = [s for s in sizes if s]
        if not known:
            continue
        filled = [s or known[-1] for s in sizes] + [max(known)] * resumes
        per_centre[node] = round(epsilon(t.dp, t.batch_size, t.epochs, t.num_updates,
                                         filled), 3)
        if node in by_label:
            policy = Policy.from_dict(by_label[node].policy)
            totals[node] = {"epsilon": round(epsilon(
                t.dp, t.batch_size, t.epochs, t.num_updates, filled,
                by_label[node].privacy_spent, policy.delta), 3),
                "delta": policy.delta, "budget": policy.epsilon_budget}
    return {"mechanism": "local DP-SGD (opacus, via Fed-BioMed dp_args)",
            "accountant": "RDP (opacus)", "sigma": t.dp.sigma, "clip": t.dp.clip,
            "delta": t.dp.delta, "epsilon": max(per_centre.values(), default=None),
            "epsilon_per_centre": per_centre, "spent_per_centre": totals}


def _cannot_start(run_id: str, resume: bool, progress: checkpoint.Progress | None,
                  config_digest: str) -> str:
    """Why this run id cannot run (or resume) here, or ""."""
    if (RESULTS / run_id).exists():
        return (f"run {run_id} has already finished (results/{run_id}/); choose another "
                f"run id")
    if resume and progress is None:
        return (f"nothing to resume: no round of run {run_id} completed here (its progress "
                f"is kept in the researcher-state volume)")
    if not resume and progress is not None:
        return (f"run {run_id} stopped after round {progress.rounds_done}: resume it with "
                f"`scripts/run --resume {run_id}`, or choose another run id")
    if progress and progress.config_sha256 != config_digest:
        return (f"cannot resume run {run_id}: the federation config or the experiment changed "
                "since it began; resume with the same ones, or start a new run")
    return ""


def serve(story: Story, verbose: bool) -> Any:
    """Fed-BioMed's Requests with its gRPC server on every interface, or None when the
    component's certificate names another host than the one nodes dial."""
    # Importing the config creates the component once, its certificate named after the
    # service nodes dial; the server then binds every interface.
    os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = str(COMPONENT)
    os.environ["FBM_SERVER_HOST"] = contract.RESEARCHER
    quiet_fedbiomed(verbose)
    from fedbiomed.researcher.config import config

    if config.get("server", "host") != contract.RESEARCHER:
        story.error(f"the researcher component was created for "
                    f"{config.get('server', 'host')!r}, not {contract.RESEARCHER!r}: "
                    "remove the researcher-state volume")
        return None
    os.environ["FBM_SERVER_HOST"] = "0.0.0.0"
    from fedbiomed.researcher.requests import Requests

    return Requests(config)


def wait_for_nodes(requests: Any, fed: Federation, deadline_s: float, story: Story
                   ) -> dict[str, contract.DatasetRecord] | None:
    """{node id: its dataset record} once every centre's node answers; None at the deadline
    (the missing centres named), or as soon as the nodes that answer include one whose data
    is broken (named with its reason, after a short grace for the others to answer).

    A node is asked for its dataset the moment it connects (arrivals.py); every node that
    has not answered yet is asked again each SEARCH_AGAIN_S, in case a reply was lost."""
    deadline = time.monotonic() + deadline_s
    expected = {contract.node_service(c.id): c for c in fed.centres}
    found: dict[str, contract.DatasetRecord] = {}
    services: set[str] = set()
    broken: list[contract.DatasetRecord] = []
    ask: list[str] | None = None  # None: every connected node
    came_at: dict[str, float] = {}  # when a node not yet found connected
    last_full = time.monotonic()
    with Arrivals() as arrivals:
        while True:
            if ask is None or ask:
                answers = {node_id: contract.DatasetRecord.from_description(
                    datasets[0]["description"])
                    for node_id, datasets in requests.search([fed.training.tag], ask).items()
                    if datasets}
                for node_id, rec in sorted(answers.items(), key=lambda kv: kv[1].centre_id):
                    if node_id not in found:
                        story.info(f"{rec.service} answered "
                                   + (f"UNHEALTHY: {rec.unhealthy}" if rec.unhealthy
                                      else "with its dataset"))
                    found[node_id] = rec
            services = {rec.service for rec in found.values()}
            broken = sorted((r for r in found.values() if r.unhealthy),
                            key=lambda r: r.centre_id)
            if broken and not set(expected) <= services:
                deadline = min(deadline, time.monotonic() + BROKEN_GRACE_S)
            if set(expected) <= services or time.monotonic() > deadline:
                break
            # A node's first task request is logged a moment before the server files it
            # under its id, so a search right then may miss it: a node that came is asked
            # again every ASK_AGAIN_S for FRESH_S, then with everyone every SEARCH_AGAIN_S.
            now = time.monotonic()
            fresh = {n for n, t in came_at.items() if n not in found and now - t < FRESH_S}
            came = arrivals.wait(min(now + ASK_AGAIN_S if fresh else last_full + SEARCH_AGAIN_S,
                                     deadline) - now)
            now = time.monotonic()
            for node_id in came - set(found):
                came_at.setdefault(node_id, now)
            if now >= last_full + SEARCH_AGAIN_S:
                ask, last_full = None, now
            else:  # [] when only nodes already found asked for tasks again: no search
                ask = sorted((came | fresh) - set(found))
    missing = sorted(set(expected) - services)
    if not broken and not missing:
        return found
    story.error("FAILED: " + "; ".join(
        [f"{r.service} ({r.centre}) cannot serve: {r.unhealthy}" for r in broken]
        + ([("no answer from " + ", ".join(f"{s} ({expected[s].name})" for s in missing))]
           if missing else []))
        + "; see `docker compose logs " + " ".join([r.service for r in broken] + missing)
        + "`")
    return None


def _missed(dropped: dict[int, dict[str, str]], names: dict[str, str]
            ) -> dict[str, dict[str, str]]:
    """{node label: {round: why}} from the rounds' {node id: why}."""
    out: dict[str, dict[str, str]] = {}
    for r, why in sorted(dropped.items()):
        for node, reason in why.items():
            out.setdefault(names.get(node, node), {})[str(r)] = reason
    return out


def _dropped(why: dict[str, str], names: dict[str, str]) -> str:
    return ", ".join(f"{names.get(node, node)} ({reason})" for node, reason in sorted(
        why.items(), key=lambda kv: names.get(kv[0], kv[0])))


def _node_states(requests: Any, names: dict[str, str]) -> str:
    """Which nodes answer a ping now (Fed-BioMed's public ping, 5 s; bounded by online())."""
    try:
        answered = online(requests)
    except Exception as exc:  # a diagnostic must not hide the failure
        return f"unknown ({exc})"
    if answered is None:
        return f"unknown (Fed-BioMed's ping did not return in {PING_TIMEOUT_S:.0f}s)"
    return ", ".join(f"{label}: {'CONNECTED' if node_id in answered else 'DISCONNECTED'}"
                     for node_id, label in sorted(names.items(), key=lambda kv: kv[1]))


def _watchdog(seconds: float, run_id: str, story: Story, requests: Any,
              names: dict[str, str]) -> threading.Timer:
    """Ends the run when a round overruns: Fed-BioMed would wait forever on a hung node."""
    def fire() -> None:
        story.error(f"FAILED: the round ran past {seconds:.0f}s; node states: "
                    f"{_node_states(requests, names)}")
        _mark_ended(run_id, Exit.ROUND_FAILED)
        os._exit(Exit.ROUND_FAILED)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def _mark_ended(run_id: str, status: int) -> None:
    tmp = RESULTS / f"{contract.RUN_ENDED}.partial"
    try:
        tmp.write_text(json.dumps({"run_id": run_id, "status": status}) + "\n")
        tmp.replace(RESULTS / contract.RUN_ENDED)
    except OSError:
        pass  # no results volume (e.g. a tool run): nobody is waiting for the marker
