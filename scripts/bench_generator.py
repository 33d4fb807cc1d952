"""Times `fedjourney generate` for one centre of N patients in a fresh process each.

Peak RSS is the child's maximum resident set (getrusage), so the benchmark's own memory
does not count; wall time includes Python start-up and imports, as a user would see it.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(population: int, work: Path) -> tuple[float, float, int]:
    cfg = yaml.safe_load((ROOT / "data" / "federation.yaml").read_text())
    cfg["centres"] = [dict(cfg["centres"][0], population=population)]
    config = work / f"bench-{population}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = work / f"out-{population}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fedjourney.cli", "generate", "--config", str(config),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib < before:  # the max over children only grows; a smaller run cannot show
        peak_kib = before
    meta = yaml.safe_load((out / "center_0" / "center_meta.yaml").read_text())
    size = sum(p.stat().st_size for p in (out / "center_0").iterdir())
    print(f"N={population:>7} living ({meta['rows']['patients']} incl. dead): {wall:6.1f} s, "
          f"{meta['rows']['patients'] / wall:7.0f} patients/s, "
          f"peak RSS {peak_kib / 1024:6.0f} MiB, "
          f"{meta['rows']['observations']:>10} observations, {size / 2**20:7.0f} MiB on disk",
          flush=True)
    return wall, peak_kib / 1024, meta["rows"]["patients"]


def main() -> None:
    sizes = sorted(int(a) for a in sys.argv[1:]) or [10_000, 100_000]
    with tempfile.TemporaryDirectory(prefix="fedjourney-bench-") as tmp:
        for n in sizes:  # ascending, so each peak RSS reading is that run's own
            run(n, Path(tmp))


if __name__ == "__main__":
    main()
