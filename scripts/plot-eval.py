#!/usr/bin/python3
"""Plots of the results JSON of `ssa eval` (docs/evaluation.md).

    /usr/bin/python3 scripts/plot-eval.py results.json [more.json ...] --out plots/

Writes, for whatever the results contain:
  perplexity-vs-receptive-field.png  every perplexity metric of sparse runs against the receptive
                                     field, full attention as a dashed line (one line per file)
  sparsity-per-layer.png             attention sparsity (kept mass) per layer, per run (with
                                     --sparsity-field N: only the selection of N tokens, under
                                     full inference solid and under sparse inference dashed)
  niah-<label>.png                   needle-in-a-haystack accuracy, depth x length, per run
Several JSON files (e.g. one per model) are drawn into the same figures, labelled by file name.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def perplexity_series(run):
    """(name, value) pairs of the run's perplexity-like metrics."""
    out = []
    for doc, v in run.get("ppl_text", {}).items():
        out.append((f"{doc} word ppl", v["word_perplexity"]))
    for doc, v in run.get("ppl_tokens", {}).items():
        out.append((f"{doc} token ppl", v["token_perplexity"]))
    for doc, v in run.get("ppl_shards", {}).items():
        out.append((f"{doc} token ppl", v["token_perplexity"]))
    for doc, v in run.get("pg19", {}).items():
        for context, ppl in v["perplexity"].items():
            out.append((f"{doc} ppl@{context}", ppl))
    return out


def perplexity_scale(values):
    """A log scale where perplexities span more than a factor of 2; within a narrower span its
    ticks would read 4.236e1, so a linear one there."""
    return "log" if max(values) > 2 * min(values) else "linear"


def plot_perplexity(results, out_dir):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    values = []
    for name, res in results:
        metrics = {}
        full = {}
        for run in res["runs"]:
            for metric, value in perplexity_series(run):
                if run["receptive_field"] is None:
                    full[metric] = value
                else:
                    metrics.setdefault(metric, []).append((run["receptive_field"], value))
        for metric, points in metrics.items():
            points.sort()
            line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{name}: {metric} (sparse)")
            values += [p[1] for p in points]
            if metric in full:
                ax.axhline(full[metric], linestyle="--", color=line.get_color(), label=f"{name}: {metric} (full)")
                values.append(full[metric])
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    if perplexity_scale(values) == "log":
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("receptive field (tokens)")
    ax.set_ylabel("perplexity")
    ax.set_title("Perplexity under sparse inference")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    path = os.path.join(out_dir, "perplexity-vs-receptive-field.png")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_sparsity(results, out_dir, only_field=None):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for index, (name, res) in enumerate(results):
        for run in res["runs"]:
            stats = run.get("stats", {}).get("receptive_fields", {})
            for field, s in stats.items():
                if only_field is not None and field != str(only_field):
                    continue
                values = [layer["sparsity"] for layer in s["layers"]]
                if only_field is None:
                    ax.plot(range(len(values)), values, marker=".", label=f"{name}: {run['label']} (selection of {field})")
                else:
                    ax.plot(range(len(values)), values, marker=".", color=f"C{index}",
                            linestyle="-" if run["receptive_field"] is None else "--", label=f"{name}: {run['label']}")
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("layer")
    ax.set_ylabel("attention sparsity (kept full-attention mass)")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    path = os.path.join(out_dir, "sparsity-per-layer.png")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_niah(results, out_dir):
    paths = []
    for name, res in results:
        for run in res["runs"]:
            cells = run.get("niah", {}).get("cells", [])
            if not cells:
                continue
            lengths = sorted({c["length"] for c in cells})
            depths = sorted({c["depth"] for c in cells})
            grid = [[float("nan")] * len(lengths) for _ in depths]
            for c in cells:
                grid[depths.index(c["depth"])][lengths.index(c["length"])] = c["accuracy"]
            fig, ax = plt.subplots(figsize=(1.2 * len(lengths) + 2, 0.5 * len(depths) + 2))
            image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(lengths)), [str(v) for v in lengths])
            ax.set_yticks(range(len(depths)), [f"{d * 100:g}%" for d in depths])
            ax.set_xlabel("length (tokens)")
            ax.set_ylabel("needle depth")
            for i, row in enumerate(grid):
                for j, value in enumerate(row):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
            ax.set_title(f"Needle in a haystack: {name} {run['label']}")
            fig.colorbar(image, ax=ax, label="accuracy")
            path = os.path.join(out_dir, f"niah-{name}-{run['label']}.png")
            fig.tight_layout()
            fig.savefig(path, dpi=150)
            plt.close(fig)
            paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.json files of ssa eval")
    parser.add_argument("--out", default="plots", help="folder for the PNG files")
    parser.add_argument("--sparsity-field", type=int, help="draw the sparsity of this receptive field only")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = []
    for path in args.results:
        try:
            with open(path, encoding="utf-8") as f:
                result = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"{path}: cannot read results: {e}")
        if not isinstance(result, dict) or not isinstance(result.get("runs"), list):
            raise SystemExit(f"{path}: not the results JSON of ssa eval (no 'runs' list)")
        results.append((os.path.splitext(os.path.basename(path))[0], result))
    written = [plot_perplexity(results, args.out), plot_sparsity(results, args.out, args.sparsity_field)] + plot_niah(results, args.out)
    for path in written:
        if path:
            print(path)


if __name__ == "__main__":
    main()
