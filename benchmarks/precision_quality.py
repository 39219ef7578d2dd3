"""Does bfloat16 training cost quality? Notebook 03 (detector and ReID trained without a filter) in
float32 and in Keras's mixed_bfloat16, for several data seeds, each run in a tree of its own
(<out>/<precision>/seed<k>, as ANON_ROOT). Prints each run's detector AP and ReID AUC, mean ± std per
precision, and whether the two means lie within seed noise of each other: |difference| at most twice
its standard error, sqrt(s_a²/n_a + s_b²/n_b). The verdict reads validation; test figures are only shown.

    .venv/bin/python benchmarks/precision_quality.py --profile cpu --seeds 0 1 2

Finished runs (notebook 03's of that precision, by the run registry) are kept, so an interrupted call
resumes. bfloat16 on a CPU without AVX-512 BF16 or AMX is emulated and slow, but gives the same answer.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from helpers import batch, config, runs
from helpers.models import PRECISIONS  # float32 first: the reference

METRICS = ("detector_ap", "reid_auc")


def run_one(root: Path, profile: str, dataset: str, seed: int, precision: str, quiet: bool) -> dict:
    """The batch runner's set-up of `dataset` in `root` (notebook 01 or 02, then 03) where the run registry
    finds no notebook 03 run of this precision; returns 03's metrics."""
    os.environ["ANON_ROOT"] = str(root)
    done = runs.unfiltered(dataset, profile, seed)
    if done is None or done.metrics.get("precision") != precision:
        setup = argparse.Namespace(profile=profile, data_seed=seed, redo_setup=done is not None, tvpr_raw=None)
        for task in batch.setup_runs(dataset, setup):
            extra = {"PRECISION": precision} if task.name == "03_networks" else {}
            batch.run_notebook(task.name, task.output, {**task.parameters, **extra}, quiet)
        done = runs.unfiltered(dataset, profile, seed)
    return done.metrics


def within_noise(a, b) -> tuple[float, float, bool]:
    """Difference of means b - a, its standard error, and |difference| <= 2 standard errors."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = b.mean() - a.mean()
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return float(diff), se, abs(diff) <= 2 * se


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=sorted(config.PROFILES))
    parser.add_argument("--dataset", default="squares", choices=config.DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=config.REPO / "results" / "precision_quality")
    parser.add_argument("--verbose", action="store_true", help="show the kernels' output")
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("seed noise needs at least two seeds")
    rows = []
    for seed in args.seeds:  # seed by seed, both precisions: an interrupted call leaves pairs
        for precision in PRECISIONS:
            root = (args.out / f"{args.profile}_{args.dataset}" / precision / f"seed{seed}").resolve()
            print(f"{precision} seed {seed} ...", end=" ", flush=True)
            m = run_one(root, args.profile, args.dataset, seed, precision, not args.verbose)
            row = {"precision": precision, "seed": seed, "train_minutes": m["train_minutes"]}
            row.update({f"{split}_{k}": m[split][k] for split in ("val", "test") for k in METRICS})
            rows.append(row)
            print(f"val AP {row['val_detector_ap']:.3f} AUC {row['val_reid_auc']:.3f}, {m['train_minutes']:.1f} min",
                  flush=True)
    table = args.out / f"{args.profile}_{args.dataset}" / "runs.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{args.profile}, {args.dataset}, seeds {args.seeds} ({table})")
    print(f"{'':16}" + "".join(f"{s + ' ' + k:>22}" for s in ("val", "test") for k in METRICS) + f"{'minutes':>10}")
    by = {p: [r for r in rows if r["precision"] == p] for p in PRECISIONS}
    for p in PRECISIONS:
        cells = [f"{np.mean([r[c] for r in by[p]]):.3f} ± {np.std([r[c] for r in by[p]], ddof=1):.3f}"
                 for c in (f"{s}_{k}" for s in ("val", "test") for k in METRICS)]
        minutes = np.mean([r["train_minutes"] for r in by[p]])
        print(f"{p:16}" + "".join(f"{c:>22}" for c in cells) + f"{minutes:10.1f}")
    verdicts = []
    for k in METRICS:
        diff, se, ok = within_noise([r[f"val_{k}"] for r in by["float32"]], [r[f"val_{k}"] for r in by["mixed_bfloat16"]])
        verdicts.append(ok)
        print(f"validation {k}: bfloat16 - float32 = {diff:+.4f}, standard error {se:.4f}: "
              + ("within seed noise" if ok else "OUTSIDE seed noise"))
    print("within_noise=" + str(all(verdicts)).lower())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
