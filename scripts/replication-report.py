#!/usr/bin/python3
"""Tables and claim verdicts of the small-scale replication (issue 13, docs/results.md).

    python3 scripts/replication-report.py runs/replication/eval/*.json > report.md

Reads the results JSON that `ssa eval` wrote for each trained model (scripts/replicate.sh names
them CONFIG-seedN.json) and prints Markdown: held-out perplexity under full attention and under
sparse attention at every receptive field, attention sparsity and KL(full || sparse), needle in a
haystack, and for each of the four claims of ssa-method.md section 5 whether it holds for the mean
over seeds and for every seed. Values over seeds are given as mean and, with several seeds, the
spread (max - min). Standard library only.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

# The receptive field of the paper's comparisons (16 blocks of 16 tokens).
KEY_FIELD = 256


def load(paths):
    """{config: {seed: results}} from CONFIG-seedN.json files."""
    models = {}
    for path in paths:
        match = re.fullmatch(r"(.+)-seed(\d+)\.json", os.path.basename(path))
        if not match:
            sys.exit(f"replication-report.py: {path}: expected a file named CONFIG-seedN.json")
        with open(path, encoding="utf-8") as f:
            models.setdefault(match.group(1), {})[int(match.group(2))] = json.load(f)
    return models


def perplexity(run):
    shards = run.get("ppl_shards", {})
    if len(shards) != 1:
        sys.exit("replication-report.py: expected one ppl-shards corpus per run")
    return next(iter(shards.values()))["token_perplexity"]


def measures(results):
    """The figures of one model: ppl per mode, sparsity and KL per mode at KEY_FIELD, niah."""
    out = {"ppl": {}, "niah": {}}
    for run in results["runs"]:
        field = run["receptive_field"]
        mode = "full" if field is None else field
        out["ppl"][mode] = perplexity(run)
        out["niah"][mode] = run.get("niah", {}).get("mean")
        stats = run.get("stats", {}).get("receptive_fields", {}).get(str(KEY_FIELD))
        if stats and field in (None, KEY_FIELD):
            kind = "full" if field is None else "sparse"
            out[f"sparsity_{kind}"] = stats["mean"]["sparsity"]
            # JSON null: infinite, some query's kept mass underflowed to 0 in float32.
            kl = stats["mean"]["kl"]
            out[f"kl_{kind}"] = math.inf if kl is None else kl
    return out


def over_seeds(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if not all(math.isfinite(v) for v in values):
        return " / ".join(f"{v:.3f}" for v in values) + " (per seed)"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {(max(values) - min(values)) / 2:.3f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(per_seed, mean):
    if mean and all(per_seed):
        return "holds (mean and every seed)"
    if mean:
        return "holds for the mean, not for every seed"
    return "does not hold"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="CONFIG-seedN.json files of ssa eval")
    args = parser.parse_args()
    models = load(args.results)
    m = {name: {seed: measures(r) for seed, r in seeds.items()} for name, seeds in models.items()}
    names = sorted(m, key=lambda n: (n != "full", n))
    fields = sorted({f for seeds in m.values() for x in seeds.values() for f in x["ppl"] if f != "full"})

    def values(name, get):
        return [get(x) for _, x in sorted(m[name].items())]

    print(f"Values: mean over seeds ± half the spread (max - min); seeds per model: "
          + ", ".join(f"{n} {len(m[n])}" for n in names) + ".\n")
    print("Per model and seed, at the receptive field of the key comparisons:\n")
    rows = []
    for name in names:
        for seed, x in sorted(m[name].items()):
            full, sparse = x["ppl"]["full"], x["ppl"].get(KEY_FIELD)
            rows.append([name, str(seed), f"{full:.2f}", f"{sparse:.2f}", f"{100 * (sparse / full - 1):+.2f}%",
                         f"{x.get('sparsity_full', math.nan):.3f}", f"{x.get('sparsity_sparse', math.nan):.3f}"])
    print(table(["model", "seed", "ppl full", f"ppl sparse {KEY_FIELD}", "change", "sparsity (full inf.)",
                 f"sparsity (sparse {KEY_FIELD})"], rows) + "\n")

    print("Held-out perplexity (tokens of the corpus's validation documents), full attention and sparse "
          "attention at each receptive field (tokens):\n")
    rows = []
    for name in names:
        row = [name, over_seeds(values(name, lambda x: x["ppl"].get("full")))]
        row += [over_seeds(values(name, lambda x, f=f: x["ppl"].get(f))) for f in fields]
        rows.append(row)
    print(table(["model", "full"] + [f"sparse {f}" for f in fields], rows) + "\n")

    print(f"Attention sparsity (full-attention mass kept by the selection of {KEY_FIELD} tokens) and "
          f"KL(full || sparse), on held-out text, under full and under sparse inference; needle in a "
          f"haystack accuracy:\n")
    rows = []
    for name in names:
        rows.append([name] + [over_seeds(values(name, lambda x, k=k: x.get(k)))
                              for k in ("sparsity_full", "sparsity_sparse", "kl_full", "kl_sparse")]
                    + [over_seeds(values(name, lambda x: x["niah"].get("full"))),
                       over_seeds(values(name, lambda x: x["niah"].get(KEY_FIELD)))])
    print(table(["model", "sparsity (full inf.)", f"sparsity (sparse {KEY_FIELD})", "KL (full inf.)",
                 f"KL (sparse {KEY_FIELD})", "niah (full)", f"niah (sparse {KEY_FIELD})"], rows) + "\n")

    def paired(a, b, better):
        """Per-seed and mean comparisons of better(a_value, b_value) over the seeds both have."""
        seeds = sorted(set(m[a]) & set(m[b]))
        return seeds, [better(m[a][s], m[b][s]) for s in seeds]

    def mean_of(name, get):
        return statistics.fmean(get(x) for x in m[name].values())

    print("Claims of ssa-method.md section 5, at this scale:\n")
    ssa, moba = f"ssa-rf{KEY_FIELD}", f"moba-rf{KEY_FIELD}"
    if not {"full", ssa, moba} <= set(m):
        print(f"(The claims need the results of full, {moba} and {ssa}.)")
        return
    loss = lambda x: x["ppl"][KEY_FIELD] / x["ppl"]["full"] - 1  # noqa: E731
    _, seeds1 = paired("full", ssa, lambda f, s: loss(f) > loss(s))
    mean1 = mean_of("full", loss) > mean_of(ssa, loss)
    print(f"1. FullAttn loses more under sparse inference ({KEY_FIELD}) than SSA: perplexity "
          f"{100 * mean_of('full', loss):+.1f}% vs {100 * mean_of(ssa, loss):+.1f}%: {verdict(seeds1, mean1)}.")
    checks, means = [], []
    for other in ("full", moba):
        for kind in ("full", "sparse"):
            key = f"sparsity_{kind}"
            checks += paired(ssa, other, lambda s, o, k=key: s[k] > o[k])[1]
            means.append(mean_of(ssa, lambda x, k=key: x[k]) > mean_of(other, lambda x, k=key: x[k]))
    print(f"2. SSA has the highest attention sparsity (under full and under sparse inference, against "
          f"FullAttn and MoBA): {verdict(checks, all(means))}.")
    sparse_ppl = lambda x: x["ppl"][KEY_FIELD]  # noqa: E731
    _, seeds3 = paired(ssa, moba, lambda s, o: sparse_ppl(s) < sparse_ppl(o))
    mean3 = mean_of(ssa, sparse_ppl) < mean_of(moba, sparse_ppl)
    print(f"3. SSA under sparse inference ({KEY_FIELD}) beats MoBA under sparse inference: perplexity "
          f"{mean_of(ssa, sparse_ppl):.3f} vs {mean_of(moba, sparse_ppl):.3f}: {verdict(seeds3, mean3)}.")
    monotone = lambda x: all(x["ppl"][a] > x["ppl"][b] for a, b in zip(fields, fields[1:]))  # noqa: E731
    checks = [monotone(x) for name in names for x in m[name].values()]
    failing = sorted({name for name in names for x in m[name].values() if not monotone(x)})
    print(f"4. Under sparse inference perplexity improves with every step of the receptive field "
          f"({', '.join(map(str, fields))}): " + ("holds for every model and seed." if all(checks) else
                                                  f"does not hold for {', '.join(failing)}."))


if __name__ == "__main__":
    main()
