"""Smoke tests of the container images (issue 4), run inside the images themselves.

By default the session first runs scripts/build-images (a no-op when the images are up to
date). Environment switches:
  FEDJOURNEY_IMAGES_PREBUILT=1    trust that scripts/build-images already ran; don't call it
  FEDJOURNEY_SKIP_IMAGE_TESTS=1   skip this module (only when explicitly asked)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedjourney import settings
from fedjourney.config import load_federation

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("generator", "node", "researcher")
IMAGES = ("base", *ROLES)
APP_UID = 10001
# Where scripts/build-base-image or the public image keep the system CA bundle.
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def docker(
    *args: str, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)[:300]} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def tag(image: str) -> str:
    return f"fedjourney/{image}:latest"


def run_sh(image: str, script: str, *opts: str, timeout: float = 180) -> str:
    """Run a shell script in a throwaway container of IMAGE (through its tini entrypoint)."""
    return docker("run", "--rm", *opts, tag(image), "sh", "-c", script, timeout=timeout).stdout


def inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def pem_certs(text: str) -> set[str]:
    """The certificates of a PEM bundle, each as its base64 body without whitespace."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    return {"".join(b.split()) for b in blocks}


@pytest.fixture(scope="session")
def built() -> None:
    if os.environ.get(settings.SKIP_IMAGE_TESTS.env) == "1":
        pytest.skip("FEDJOURNEY_SKIP_IMAGE_TESTS=1: image tests skipped on request")
    if os.environ.get(settings.IMAGES_PREBUILT.env) != "1":
        subprocess.run([str(ROOT / "scripts" / "build-images")], check=True, timeout=5400)
    for image in IMAGES:
        docker("image", "inspect", tag(image))


@pytest.fixture(scope="session")
def base_os_image(built: None) -> str:
    """The image everything was built on: the public python image or the local Debian one."""
    labels = inspect(tag("base-deps"))["Config"]["Labels"]
    return labels["org.fedjourney.base-image"]


@pytest.mark.parametrize("image", IMAGES)
def test_package_and_clis_answer_as_non_root(built: None, image: str) -> None:
    out = run_sh(
        image,
        """set -e
        echo "uid=$(id -u) gid=$(id -g)"
        echo "pid1=$(cat /proc/1/comm)"
        python3 -c 'import fedjourney; print("fedjourney imports from", fedjourney.__file__)'
        fedjourney --help >/dev/null && echo "fedjourney answers"
        echo "fedbiomed $(fedbiomed --version)"
        fedbiomed --help | grep -q component && echo "fedbiomed answers"
        """,
    )
    assert f"uid={APP_UID} gid={APP_UID}" in out
    assert "pid1=tini" in out
    assert "fedjourney imports from /opt/venv/" in out
    assert "fedjourney answers" in out
    assert "fedbiomed 6.4.1" in out
    assert "fedbiomed answers" in out


@pytest.mark.parametrize("image", IMAGES)
def test_image_config(built: None, image: str) -> None:
    config = inspect(tag(image))["Config"]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["tini", "-g", "--"]
    assert config["Labels"].get("org.fedjourney.build-hash")
    # Nothing of the build's TLS or pip set-up may remain in the image's environment.
    names = {e.split("=", 1)[0] for e in config["Env"]}
    leaked = {n for n in names if n.startswith("PIP_") or "CA_" in n or n.startswith("SSL_CERT")}
    assert not leaked, leaked
    if image in ("node", "researcher"):  # the generator is one-shot: no health check
        assert config["Healthcheck"]["Test"] == ["CMD", "fedjourney-healthcheck"]
    elif image == "generator":
        assert "Healthcheck" not in config or config["Healthcheck"] is None


def test_fedbiomed_torch_tanat_work_with_fedjourneys_pins(built: None) -> None:
    """The components' imports, without monai/itk/unet, with polars 2.1.0 under fedbiomed."""
    script = textwrap.dedent(
        """
        import importlib.util, os, tempfile, tomllib
        os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = tempfile.mkdtemp()
        import polars, torch, torchvision, tanat, tanat_synthea, fedjourney
        from fedbiomed.node.node import Node
        from fedbiomed.common.training_plans import TorchTrainingPlan
        from fedbiomed.common.datamanager import DataManager
        from fedbiomed.researcher.federated_workflows import Experiment
        from fedbiomed.researcher.aggregators.fedavg import FedAverage
        from fedbiomed.common.dataset import TabularDataset
        from fedbiomed.common.dataset_types import DataReturnFormat

        left_out = [m for m in ("monai", "itk", "unet") if importlib.util.find_spec(m)]
        assert not left_out, f"installed although left out: {left_out}"
        # fedbiomed's CSV reader and tabular dataset (polars-based) on fedjourney's polars.
        path = os.path.join(tempfile.mkdtemp(), "data.csv")
        with open(path, "w") as f:
            f.write("a,b,y\\n1.0,2.0,0\\n3.0,4.0,1\\n")
        ds = TabularDataset(input_columns=["a", "b"], target_columns=["y"])
        ds.load(root=path, to_format=DataReturnFormat.TORCH)
        x, y = ds[1]
        assert x.tolist() == [3.0, 4.0] and y.tolist() == [1], (x, y)
        print("polars", polars.__version__, "torch", torch.__version__)
        """
    )
    out = docker("run", "--rm", tag("base"), "python3", "-c", script).stdout
    pyproject = (ROOT / "pyproject.toml").read_text()
    pinned = re.search(r'"polars==([^"]+)"', pyproject)
    assert pinned and f"polars {pinned.group(1)}" in out, out


def test_fedavg_round_between_a_node_and_the_researcher(built: None) -> None:
    """One real Fed-BioMed round (node + researcher, TorchTrainingPlan, FedAverage) in the
    researcher image, as the non-root user: the images run what the stack needs."""
    plan = textwrap.dedent(
        """
        import os, time
        os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = "/tmp/researcher"
        import torch
        from fedbiomed.common.training_plans import TorchTrainingPlan
        from fedbiomed.common.datamanager import DataManager
        from fedbiomed.common.dataset import TabularDataset
        from fedbiomed.researcher.federated_workflows import Experiment
        from fedbiomed.researcher.aggregators.fedavg import FedAverage

        class SmokePlan(TorchTrainingPlan):
            def init_dependencies(self):
                return ["from fedbiomed.common.dataset import TabularDataset",
                        "from fedbiomed.common.datamanager import DataManager"]
            def init_model(self, model_args):
                return torch.nn.Linear(2, 1)
            def init_optimizer(self, optimizer_args):
                return torch.optim.SGD(self.model().parameters(), lr=optimizer_args["lr"])
            def training_data(self):
                dataset = TabularDataset(input_columns=["a", "b"], target_columns=["y"])
                return DataManager(dataset=dataset, shuffle=True)
            def training_step(self, data, target):
                return torch.nn.functional.mse_loss(self.model()(data.float()), target.float())

        exp = Experiment(tags=["smoke"], training_plan_class=SmokePlan, model_args={},
                         training_args={"loader_args": {"batch_size": 16},
                                        "optimizer_args": {"lr": 0.1}, "epochs": 1},
                         round_limit=1, aggregator=FedAverage())
        exp.run()
        ok = [r["success"] for rnd in exp.training_replies().values() for r in rnd.values()]
        print("ROUND-SUCCESS", ok)
        """
    )
    script = f"""set -e
    cd /tmp
    python3 -c "
import random
random.seed(0)
with open('/tmp/data.csv', 'w') as f:
    f.write('a,b,y\\n')
    for _ in range(64):
        a, b = random.random(), random.random()
        f.write(f'{{a}},{{b}},{{2 * a - b}}\\n')
"
    echo '{{"path": "/tmp/data.csv", "data_type": "csv", "description": "smoke",
          "tags": "smoke", "name": "smoke"}}' > /tmp/dataset.json
    fedbiomed component create -c node -p /tmp/node -n smoke-node >/dev/null
    fedbiomed node -p /tmp/node dataset add --file /tmp/dataset.json >/tmp/add.log 2>&1 \\
        || {{ cat /tmp/add.log; exit 1; }}
    fedbiomed node -p /tmp/node start >/tmp/node.log 2>&1 &
    cat > /tmp/plan.py <<'PY'
{plan}
PY
    timeout 240 python3 /tmp/plan.py || {{ echo '--- node log'; tail -n 40 /tmp/node.log; exit 1; }}
    """
    out = run_sh("researcher", script, timeout=300)
    assert "ROUND-SUCCESS [True]" in out, out[-3000:]


# Two centres, 3 rounds, as the researcher's Metrics receive them; B withholds its validation
# metrics (secure aggregation). Curves writes round by round, read back with TensorBoard's own
# reader after each update (flushed: live) and at the end, then once more as a resumed run
# writes them: all rounds in one update, in a fresh folder.
CURVES_SCRIPT = textwrap.dedent(
    """
    import math
    from pathlib import Path
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from fedjourney.contract import METRICS_WITHHELD
    from fedjourney.researcher.curves import Curves
    from fedjourney.researcher.experiment import Metrics

    ROUNDS = 3
    names = {"id-a": "node-0 Massachusetts General Hospital", "id-b": "node-1 Mayo/Clinic"}
    A, B = Path("node-0_Massachusetts_General_Hospital"), Path("node-1_Mayo_Clinic")
    loss = {r: [0.9 - 0.1 * r, 0.7 - 0.1 * r] for r in range(1, ROUNDS + 1)}
    auc = {1: 0.5, 2: 0.6, 3: float("nan"), 4: 0.8}

    def scalars(folder):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        return {tag: [(e.step, round(e.value, 5)) for e in acc.Scalars(tag)]
                for tag in acc.Tags()["scalars"]}

    metrics, out = Metrics(), Path("/tmp/tb")
    curves = Curves(out, names)
    for r in range(1, ROUNDS + 1):
        metrics.round = r
        validations = [r, r + 1] if r == ROUNDS else [r]  # the final model's in the last
        for v in validations:
            metrics.on_scalar({"node_id": "id-a", "test_on_global_updates": True, "metric": {
                "loss": 0.1 * v, "auc": auc[v], "accuracy": 0.5 + 0.1 * v}})
            metrics.on_scalar({"node_id": "id-b", "test_on_global_updates": True,
                               "metric": {METRICS_WITHHELD: 1.0}})
        for node, shift in (("id-a", 0.0), ("id-b", 1.0)):
            for batch in loss[r]:
                metrics.on_scalar({"node_id": node, "train": True,
                                   "metric": {"Loss": batch + shift}})
        curves.update(metrics, r)
        seen = scalars(out / A)  # read during the run
        assert [s for s, _ in seen["train/loss"]] == list(range(1, r + 1)), (r, seen)
        assert [s for s, _ in seen["validation/loss"]] == [*range(1, r + 1),
                                                           *([r + 1] if r == ROUNDS else [])]
    curves.close()

    def check(folder):
        assert sorted(p.name for p in folder.iterdir()) == [A.name, B.name]
        a, b = scalars(folder / A), scalars(folder / B)
        mean = {r: sum(batches) / len(batches) for r, batches in loss.items()}
        assert a["train/loss"] == [(r, round(mean[r], 5)) for r in mean], a
        assert b["train/loss"] == [(r, round(mean[r] + 1.0, 5)) for r in mean], b
        assert a["validation/auc"] == [(1, 0.5), (2, 0.6), (4, 0.8)], a  # NaN left out
        assert a["validation/loss"] == [(v, round(0.1 * v, 5)) for v in range(1, 5)], a
        assert a["validation/accuracy"] == [(v, round(0.5 + 0.1 * v, 5))
                                            for v in range(1, 5)], a
        assert sorted(b) == ["train/loss"], b  # withheld: no validation at all
        return [p.stat().st_size for p in folder.rglob("events.out.tfevents.*")]

    sizes = check(out)
    resumed = Curves(Path("/tmp/resumed"), names)
    resumed.update(metrics, ROUNDS)
    resumed.close()
    check(Path("/tmp/resumed"))
    print("CURVES-OK", sizes)
    """
)


def test_tensorboard_curves_in_the_researcher_image(built: None) -> None:
    """researcher/curves.py with the image's torch and tensorboard: the scalars and steps a
    run writes (the final model's validation at step rounds+1), NaN and withheld metrics
    left out, each update readable at once, a resumed run writing every round again."""
    out = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
                 tag("researcher"), "python3", "-c", CURVES_SCRIPT).stdout
    assert "CURVES-OK" in out, out[-3000:]
    # `tensorboard --logdir results/` from the image, as docs/running.md shows it.
    version = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
                     tag("researcher"), "tensorboard", "--version").stdout
    assert version.strip().startswith("2.18"), version


def test_the_study_dp_experiment_spends_at_most_epsilon_10(built: None) -> None:
    """The shipped DP experiment's budget, by the accountant the researcher reports with
    (opacus, in the image): the smallest centre, Mercy (~700 training patients), spends the
    most."""
    t = load_federation(ROOT / "data" / "study.yaml").experiment("dp")
    assert t.dp is not None
    code = ("from fedjourney.config import Privacy\n"
            "from fedjourney.researcher.privacy import epsilon\n"
            f"print('EPSILON', epsilon(Privacy({t.dp.sigma}, {t.dp.clip}, {t.dp.delta}), "
            f"{t.batch_size}, {t.epochs}, {t.num_updates}, [700] * {t.rounds}))")
    out = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
                 tag("researcher"), "python3", "-c", code).stdout
    spent = float(out.split("EPSILON", 1)[1])
    assert 0 < spent <= 10, out


def test_jupyterlab_and_a_kernel_in_the_researcher_image(built: None) -> None:
    """What the notebook researcher runs: JupyterLab, and a python3 kernel nbclient starts."""
    # Read-only, as the notebook service runs it: Jupyter's state goes to /tmp (the image's
    # environment says so).
    out = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
                 tag("researcher"), "sh", "-c",
                 "jupyter lab --version && jupyter kernelspec list").stdout
    assert out.splitlines()[0].startswith("4.") and "python3" in out, out


@pytest.mark.parametrize("image", IMAGES)
def test_no_wheelhouse_pip_cache_credential_or_proxy_ca(
    built: None, base_os_image: str, image: str
) -> None:
    # Files the build used and must not leave behind (checked as root, who sees everything).
    out = run_sh(
        image,
        """
        for p in /root/.cache /home/fedjourney/.cache /tmp/wheels /tmp/debs /tmp/fedjourney \
                 /tmp/prefix /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.netrc \
                 /root/.pypirc /home/fedjourney/.config/pip /home/fedjourney/.netrc \
                 /home/fedjourney/.pypirc /run/host-ca.crt; do
            [ -e "$p" ] && echo "LEFTOVER $p"
        done
        # ensurepip's and Debian's own wheels (python3-pip-whl) belong to the base image.
        find / -xdev \\( -name '*.whl' -o -name '*.deb' \\) -not -path '*/ensurepip/_bundled/*' \
            -not -path '/usr/share/python-wheels/*' 2>/dev/null | sed 's/^/LEFTOVER /'
        echo checked
        """,
        "--user",
        "0:0",
    )
    assert "checked" in out
    assert "LEFTOVER" not in out, out

    # CA certificates: the image's trust store is exactly the base image's, certifi's bundle
    # is the one its wheel shipped, and no certificate the host adds (an intercepting proxy's
    # CA) appears anywhere.
    base_bundle = docker("run", "--rm", "--entrypoint", "cat", base_os_image, SYSTEM_BUNDLE).stdout
    image_bundle = docker("run", "--rm", "--entrypoint", "cat", tag(image), SYSTEM_BUNDLE).stdout
    assert pem_certs(image_bundle) == pem_certs(base_bundle)
    certifi_check = textwrap.dedent(
        """
        import base64, hashlib, importlib.metadata as md, pathlib, sys
        dist = md.distribution("certifi")
        for f in dist.files:
            if f.name == "cacert.pem":
                data = pathlib.Path(f.locate()).read_bytes()
                digest = hashlib.new(f.hash.mode, data).digest()
                got = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                assert got == f.hash.value, "certifi/cacert.pem differs from its wheel"
                sys.stdout.write(data.decode())
        """
    )
    certifi_bundle = docker("run", "--rm", tag(image), "python3", "-c", certifi_check).stdout
    extra = run_sh(image, "cat /usr/local/share/ca-certificates/* 2>/dev/null || true")
    assert not pem_certs(extra)
    host = Path(SYSTEM_BUNDLE)
    if host.is_file():
        host_only = pem_certs(host.read_text()) - pem_certs(base_bundle) - pem_certs(certifi_bundle)
        in_image = host_only & (pem_certs(image_bundle) | pem_certs(certifi_bundle))
        assert not in_image, f"{len(in_image)} of the host's own CA certificates are in {image}"


def test_healthcheck_follows_the_ready_file(built: None) -> None:
    out = run_sh(
        "node",
        """
        fedjourney-healthcheck; echo "before=$?"
        echo "node connected" > "$FEDJOURNEY_HEALTH_FILE"
        fedjourney-healthcheck; echo "after=$?"
        rm "$FEDJOURNEY_HEALTH_FILE"
        fedjourney-healthcheck; echo "removed=$?"
        """,
    )
    assert "before=1" in out
    assert "node connected\nafter=0" in out
    assert "removed=1" in out


def test_docker_stop_is_prompt_thanks_to_tini(built: None) -> None:
    name = f"fedjourney-test-{uuid.uuid4().hex[:8]}"
    try:
        docker("run", "-d", "--name", name, tag("node"), "sleep", "300")
        start = time.monotonic()
        docker("stop", "-t", "20", name, timeout=60)
        elapsed = time.monotonic() - start
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    finally:
        docker("rm", "-f", name, check=False)
    assert elapsed < 10, f"docker stop took {elapsed:.1f}s: SIGTERM was not forwarded"
    assert code == "143", code  # 128 + SIGTERM: the child got the signal


@pytest.fixture
def fresh_volume() -> Iterator[str]:
    name = f"fedjourney-test-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    try:
        yield name
    finally:
        docker("volume", "rm", "-f", name, check=False)


@pytest.mark.parametrize("mount_point", ["/data", "/fbm", "/results",
                                         "/home/fedjourney/work"])
def test_a_fresh_named_volume_is_writable_by_the_user(
    built: None, fresh_volume: str, mount_point: str
) -> None:
    out = run_sh(
        "node",
        f"touch {mount_point}/probe && stat -c '%u' {mount_point}/probe",
        "-v",
        f"{fresh_volume}:{mount_point}",
    )
    assert out.strip() == str(APP_UID)


def test_build_images_skips_what_is_up_to_date(built: None) -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-images")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "building" not in proc.stdout, proc.stdout
    for image in ("base-deps", *IMAGES):
        assert f"{tag(image)} up to date" in proc.stdout, proc.stdout


def test_the_gate_image_runs_stunnel_as_the_user_and_refuses_bad_arguments(built: None) -> None:
    """The hospital kit's gate (images/gate): non-root, stunnel loads, and its command
    refuses what it cannot run in one line, status 2, naming the argument or the file."""
    gate = tag("gate")
    user = subprocess.run(["docker", "image", "inspect", "-f", "{{.Config.User}}", gate],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert user == f"{APP_UID}:{APP_UID}"
    base = ["docker", "run", "--rm", "--read-only", "--cap-drop", "ALL", gate]
    version = subprocess.run([*base, "stunnel", "-version"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert "stunnel 5." in version.stdout + version.stderr
    for args, error in ((["proxy", "1", "x:1"], "unknown mode 'proxy'"),
                        (["server", "1", "nohost"], "CONNECT must be HOST:PORT"),
                        (["server", "50051", "researcher:50051"],
                         "missing credential file /run/fedjourney/credentials/ca.pem")):
        done = subprocess.run([*base, "fedjourney-gate", *args], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert error in done.stderr, done.stderr
