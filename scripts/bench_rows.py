"""What a minimum batch size does against row recovery from one update, and what DP-SGD does.

The attack a researcher who chooses the model can run on any node whose policy allows the
batch: one SGD step of the shipped MLP, then each first-layer unit's weight update divided
by its bias update. A ReLU unit that only one patient of the batch activates gives that
patient's row exactly. Run on the demo federation's data (regenerated here, as the nodes
hold it), at the MLP's random start, for each batch size and width; then with DP-SGD as
opacus runs it (each patient's gradient clipped to `clip`, Gaussian noise of std
sigma x clip on the sum). A row counts as recovered when every value is within 1e-3.

  scripts/bench rows [--trials 200] [--config data/federation.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from fedjourney.config import load_federation
from fedjourney.features import build, plan_input
from fedjourney.generator import generate
from fedjourney.model import make_mlp

TOLERANCE = 1e-3


def attack(x: torch.Tensor, y: torch.Tensor, batch: int, width: int, seed: int,
           dp: tuple[float, float] | None) -> int:
    """Patients whose exact row one step's update gives back."""
    torch.manual_seed(seed)
    model = make_mlp(x.shape[1], width)
    rows = torch.randperm(len(x))[:batch]
    grads = []
    for group in ([rows] if dp is None else [rows[i:i + 1] for i in range(len(rows))]):
        model.zero_grad()
        torch.nn.functional.binary_cross_entropy(model(x[group]), y[group]).backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
    if dp is None:
        weight, bias = -grads[0][0], -grads[0][1]
    else:
        sigma, clip = dp
        summed = [torch.zeros_like(g) for g in grads[0]]
        for g in grads:
            norm = float(torch.sqrt(sum((q ** 2).sum() for q in g)))
            for total, q in zip(summed, g, strict=True):
                total += q * min(1.0, clip / norm)
        weight = -(summed[0] + torch.randn_like(summed[0]) * sigma * clip) / batch
        bias = -(summed[1] + torch.randn_like(summed[1]) * sigma * clip) / batch
    units = bias.abs() > 1e-12
    candidates = weight[units] / bias[units].unsqueeze(1)
    error = (candidates.unsqueeze(1) - x.unsqueeze(0)).abs().amax(dim=-1)
    best, which = error.min(dim=1)
    return len(set(which[best < TOLERANCE].tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="random starts per cell")
    parser.add_argument("--config", default="data/federation.yaml")
    args = parser.parse_args()
    fed = load_federation(args.config)
    spec = fed.feature_spec()
    with tempfile.TemporaryDirectory() as tmp:
        generate(fed, Path(tmp))
        centres = []
        for c in fed.centres:
            features = build(Path(tmp) / c.folder_name, spec)
            centres.append((c.name, torch.from_numpy(plan_input(features.X, spec, "vector")),
                            torch.from_numpy(features.y).float().reshape(-1, 1)))
    print(f"{args.trials} random starts per centre and cell, {len(centres)} centres "
          f"({', '.join(f'{n}: {len(x)} patients' for n, x, _ in centres)})")
    print("| batch | width | DP-SGD (sigma, clip) | rows recovered a step (mean) | "
          "steps giving none | n |")
    print("|---|---|---|---|---|---|")
    cells = [(b, w, None) for b in (1, 8, 16, 32) for w in (32, 256)]
    cells += [(b, 256, dp) for b in (8, 16) for dp in ((0.5, 1.0), (1.0, 1.0), (1.0, 5.0))]
    for batch, width, dp in cells:
        got = [attack(x, y, batch, width, seed, dp) for _, x, y in centres
               for seed in range(args.trials)]
        shown = "off" if dp is None else f"{dp[0]:g}, {dp[1]:g}"
        print(f"| {batch} | {width} | {shown} | {np.mean(got):.2f} | "
              f"{sum(g == 0 for g in got)} | {len(got)} |")


if __name__ == "__main__":
    main()
