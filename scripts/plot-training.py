#!/usr/bin/python3
"""Loss curves of `ssa train` runs, from their metrics.jsonl (docs/training.md).

    /usr/bin/python3 scripts/plot-training.py RUN_DIR [RUN_DIR ...] --out plots/

Writes loss-curves.png: the training cross entropy of every run against the step (a running mean
over --smooth steps, the raw values faint behind it), the validation loss under full (circles) and
sparse (crosses) inference where the run validated, and, for SSA runs, the alignment loss on a
second axis. Runs are labelled by folder name.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: no such file (is {run_dir} a train.run_dir?)")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{number}: not JSON: {e}")
    if not rows:
        raise SystemExit(f"{path}: no steps recorded")
    return rows


def running_mean(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (train.run_dir)")
    parser.add_argument("--out", required=True, help="folder for the PNG")
    parser.add_argument("--smooth", type=int, default=10, help="steps of the running mean")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(8, 4.8))
    align_ax = None
    for index, run in enumerate(args.runs):
        rows = read_metrics(run)
        label = os.path.basename(os.path.normpath(run))
        color = f"C{index}"
        steps = [r["step"] for r in rows if r.get("ce") is not None]
        ce = [r["ce"] for r in rows if r.get("ce") is not None]
        ax.plot(steps, ce, color=color, alpha=0.2, linewidth=0.8)
        ax.plot(steps, running_mean(ce, args.smooth), color=color, label=f"{label} train CE")
        for mode, marker in (("full", "o"), ("sparse", "x")):
            points = [(r["step"], r[f"val_loss_{mode}"]) for r in rows if r.get(f"val_loss_{mode}") is not None]
            if points:
                ax.plot(*zip(*points), marker=marker, linestyle="--", color=color, label=f"{label} val ({mode})")
        align = [(r["step"], r["align"]) for r in rows if r.get("align")]
        if align:
            if align_ax is None:
                align_ax = ax.twinx()
                align_ax.set_ylabel("alignment loss (dotted)")
                align_ax.set_yscale("log")
            align_ax.plot(*zip(*align), color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("cross entropy (nats per token)")
    ax.set_title("training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "loss-curves.png")
    fig.savefig(path, dpi=120)
    print(path)


if __name__ == "__main__":
    main()
