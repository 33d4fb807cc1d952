"""Features benchmark: wall time and peak RSS of building X for one centre of N patients.

Each (N, backend) runs in a fresh process (peak RSS is that process's own maximum). Data
is generated once per N under the work folder (default: a temporary folder; 100,000
patients take about 15 GB of CSV).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from pathlib import Path
from fedjourney.config import load_federation
from fedjourney.features import build
spec = load_federation(sys.argv[1]).feature_spec()
started = time.perf_counter()
fs = build(Path(sys.argv[2]), spec, sys.argv[3])
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                  / 1024, "shape": list(fs.X.shape)}))
"""


def generate(n: int, work: Path) -> tuple[Path, Path]:
    cfg = yaml.safe_load((ROOT / "data" / "federation.yaml").read_text())
    cfg["centres"] = [dict(cfg["centres"][0], population=n)]
    config = work / f"bench-{n}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = work / f"data-{n}"
    subprocess.run([sys.executable, "-m", "fedjourney.cli", "generate", "--config", str(config),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return config, out / "center_0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=["polars", "tanat"])
    parser.add_argument("--work", type=Path, help="keep generated data here")
    parser.add_argument("--timeout", type=int, default=1800, help="per run, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedjourney-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            config, folder = generate(n, work)
            rows = yaml.safe_load((folder / "center_meta.yaml").read_text())["rows"]
            for backend in args.backends:
                started = time.perf_counter()
                try:
                    done = subprocess.run([sys.executable, "-c", CHILD, str(config), str(folder),
                                           backend], capture_output=True, text=True,
                                          timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    print(f"N={n:>7} {backend:>6}: timed out after {args.timeout} s", flush=True)
                    continue
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"N={n:>7} {backend:>6}: failed after "
                          f"{time.perf_counter() - started:.0f} s: {last}", flush=True)
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"N={n:>7} ({rows['patients']} patients, {rows['observations']} "
                      f"observation rows) {backend:>6}: build {r['wall']:6.2f} s, peak RSS "
                      f"{r['rss_mib']:6.0f} MiB, X {tuple(r['shape'])}", flush=True)


if __name__ == "__main__":
    main()
