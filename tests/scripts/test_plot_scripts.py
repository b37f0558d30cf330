"""The quick start's plot scripts (scripts/plot-eval.py, scripts/plot-training.py) on small
results written here: the PNGs they promise, the y scale of the perplexity plot, and one-line
errors for missing or malformed input. Run by CTest; exits 77 (skipped) without matplotlib."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLOT_EVAL = os.path.join(ROOT, "scripts", "plot-eval.py")
PLOT_TRAINING = os.path.join(ROOT, "scripts", "plot-training.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_plot_eval():
    spec = importlib.util.spec_from_file_location("plot_eval", PLOT_EVAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eval_results(full_ppl, sparse_ppls):
    """The shape of `ssa eval --out` with ppl-shards and stats: one full run, one sparse run per
    receptive field."""
    def stats(sparsities):
        return {"receptive_fields": {"128": {"layers": [{"sparsity": s} for s in sparsities]}}}

    runs = [{"label": "full", "attention": "full", "receptive_field": None,
             "ppl_shards": {"demo": {"token_perplexity": full_ppl}}, "stats": stats([0.5, 0.7, 0.9])}]
    for field, ppl in sparse_ppls.items():
        runs.append({"label": f"sparse-{field}", "attention": "sparse", "receptive_field": field,
                     "ppl_shards": {"demo": {"token_perplexity": ppl}}})
    return {"model": "m", "block_size": 16, "selection": "group", "tasks": [], "runs": runs}


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


class PlotEvalTest(unittest.TestCase):
    def test_writes_both_plots(self):
        with tempfile.TemporaryDirectory() as work:
            results = os.path.join(work, "eval.json")
            with open(results, "w") as f:
                json.dump(eval_results(42.25, {128: 42.37, 256: 42.25, 512: 42.24}), f)
            out = os.path.join(work, "plots")
            done = run(PLOT_EVAL, results, "--out", out)
            self.assertEqual(done.returncode, 0, done.stderr)
            for name in ("perplexity-vs-receptive-field.png", "sparsity-per-layer.png"):
                with open(os.path.join(out, name), "rb") as f:
                    self.assertEqual(f.read(8), PNG_SIGNATURE, name)

    def test_perplexity_scale_is_log_only_over_a_wide_span(self):
        plot_eval = load_plot_eval()
        self.assertEqual(plot_eval.perplexity_scale([42.24, 42.37]), "linear")
        self.assertEqual(plot_eval.perplexity_scale([113.8, 145.5]), "linear")
        self.assertEqual(plot_eval.perplexity_scale([12.0, 30.0, 310.0]), "log")

    def test_missing_and_malformed_results_fail_in_one_line(self):
        with tempfile.TemporaryDirectory() as work:
            missing = os.path.join(work, "none.json")
            done = run(PLOT_EVAL, missing, "--out", work)
            self.assertNotEqual(done.returncode, 0)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn("none.json", done.stderr)

            wrong = os.path.join(work, "metrics.json")
            with open(wrong, "w") as f:
                json.dump({"step": 1}, f)
            done = run(PLOT_EVAL, wrong, "--out", work)
            self.assertNotEqual(done.returncode, 0)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn("not the results JSON of ssa eval", done.stderr)


class PlotTrainingTest(unittest.TestCase):
    def test_writes_the_loss_curves(self):
        with tempfile.TemporaryDirectory() as work:
            run_dir = os.path.join(work, "ssa")
            os.makedirs(run_dir)
            with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
                for step in range(1, 21):
                    row = {"step": step, "ce": 10.0 - 0.2 * step, "align": 0.01 / step}
                    if step % 10 == 0:
                        row.update(val_loss_full=9.0 - 0.1 * step, val_loss_sparse=9.1 - 0.1 * step)
                    f.write(json.dumps(row) + "\n")
            out = os.path.join(work, "plots")
            done = run(PLOT_TRAINING, run_dir, "--out", out)
            self.assertEqual(done.returncode, 0, done.stderr)
            with open(os.path.join(out, "loss-curves.png"), "rb") as f:
                self.assertEqual(f.read(8), PNG_SIGNATURE)

    def test_a_folder_without_metrics_fails_in_one_line(self):
        with tempfile.TemporaryDirectory() as work:
            done = run(PLOT_TRAINING, work, "--out", os.path.join(work, "plots"))
            self.assertNotEqual(done.returncode, 0)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn("metrics.jsonl: no such file", done.stderr)


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is missing: skipped")
        sys.exit(77)
    unittest.main()
