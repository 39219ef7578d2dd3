"""Run the notebooks with papermill, in order, and gather every finished run into results/summary.*.

    python -m helpers.batch S1 S4 R1 R7                 # data and unfiltered networks if needed, 04 per
                                                        # variant, then 05, 06 (fresh attackers) and 07
    python -m helpers.batch S1 S2 --seeds 0 1 2         # three training runs per variant
    python -m helpers.batch R1 R2 R3 --tvpr-raw ~/TVPR  # TVPR itself instead of the offline stand-in

Runs of notebook 04 that already finished (same profile, training seed and data seed) are kept, so
calling it again only runs what is missing. Each notebook's kernel output (TensorFlow's start-up logs
and the like) goes to a .log file beside the executed notebook; the terminal gets one line per notebook,
and on a failure the notebook's path, its log and the error.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from helpers import config, report, runs

NOTEBOOKS = config.REPO / "notebooks"


class NotebookFailed(RuntimeError):
    pass


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's stderr (and so the kernels', which inherit it) to `path` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_notebook(name: str, output: Path, parameters: dict, quiet: bool = True) -> float:
    """Execute notebooks/<name>.ipynb into `output` with papermill; returns the minutes it took."""
    import papermill as pm
    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"No notebook {source}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    log = output.with_suffix(".log")
    started = time.time()
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with _stderr_to(log) if quiet else contextlib.nullcontext():
            pm.execute_notebook(str(source), str(output), parameters=parameters, cwd=str(NOTEBOOKS),
                                kernel_name="python3", progress_bar=not quiet, log_output=False)
    except Exception as err:  # papermill's error names the cell; we add where to look
        message = str(err).strip().splitlines()
        raise NotebookFailed(f"{name} failed: see the executed notebook {output} and its log {log}.\n"
                             + "\n".join(message[-15:])) from None
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return (time.time() - started) / 60


class Plan:
    """The notebook runs of one batch, numbered, each announced on one line and timed."""

    def __init__(self, quiet: bool):
        self.quiet, self.minutes, self.count, self.total = quiet, {}, 0, 0

    def run(self, label: str, name: str, output: Path, parameters: dict) -> None:
        self.count += 1
        print(f"[{self.count}/{self.total}] {label} ...", end=" ", flush=True)
        minutes = run_notebook(name, output, parameters, self.quiet)
        self.minutes[label] = minutes
        print(f"{minutes:.1f} min", flush=True)


def tvpr_prepared_from(args) -> bool:
    """True if data/tvpr/ holds what this call asks for (TVPR_RAW or the stand-in of this profile and seed)."""
    from helpers.datasets import tvpr_dir
    try:
        source = json.loads((tvpr_dir() / "manifest.json").read_text())["source"]["raw_root"]
    except (OSError, ValueError, KeyError, TypeError):  # missing, or damaged: prepare again
        return False
    if args.tvpr_raw:
        return Path(source) == Path(args.tvpr_raw).expanduser().resolve()
    return f"{args.profile}_seed{args.data_seed}" in source


def squares_prepared(args) -> bool:
    """True if notebook 01's sets for this profile and data seed exist and can be read; a damaged or
    outdated file is made again (and said so)."""
    from helpers import squares
    path = squares.sets_path(config.data_dir(), args.profile, args.data_seed)
    if not path.exists():
        return False
    try:
        squares.load_sets(path)
    except ValueError as err:
        print(f"{err}\nnotebook 01 makes it again.")
        return False
    return True


def setup_runs(dataset: str, args) -> list[tuple]:
    """The data (notebook 01 or 02) and unfiltered networks (03) of one data set, where missing."""
    todo = []
    common = {"PROFILE": args.profile, "DATA_SEED": args.data_seed}
    executed = config.results_dir() / "notebooks"
    if dataset == "squares":
        if args.redo_setup or not squares_prepared(args):
            todo.append(("01 squares", "01_synthetic_squares", executed / "01_synthetic_squares.ipynb", common))
    elif args.redo_setup or not tvpr_prepared_from(args):
        raw = str(Path(args.tvpr_raw).expanduser().resolve()) if args.tvpr_raw else None
        todo.append(("02 TVPR", "02_prepare_tvpr", executed / "02_prepare_tvpr.ipynb", {**common, "TVPR_RAW": raw}))
    if args.redo_setup or todo or runs.unfiltered(dataset, args.profile, args.data_seed) is None:
        name = "03_networks.ipynb" if dataset == "squares" else f"03_networks_{dataset}.ipynb"
        todo.append((f"03 {dataset}", "03_networks", executed / name, {**common, "DATASET": dataset}))
    return todo


def header(argv) -> str:
    """The first lines of summary.md: when, where and from which commit this batch ran."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=NOTEBOOKS.parent, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=NOTEBOOKS.parent,
                               capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"Run: `python -m helpers.batch {' '.join(argv)}` on {when}, commit {commit}, "
            f"{os.cpu_count()} CPU cores ({platform.machine()}).\n\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=list(config.QUICK_VARIANTS), help="variants for notebook 04")
    parser.add_argument("--profile", default=config.default_profile(), choices=sorted(config.PROFILES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="TRAIN_SEED",
                        help="training seeds: one run of notebook 04 per variant and seed (default: 0)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the data sets and of notebook 03")
    parser.add_argument("--retrain", action="store_true", help="rerun notebook 04 even for finished runs")
    parser.add_argument("--redo-setup", action="store_true", help="rerun 01/02 and 03 even if their outputs exist")
    parser.add_argument("--tvpr-raw", metavar="FOLDER", help="TVPR frames/videos + annotations.csv for "
                        "notebook 02 (default: the offline stand-in)")
    parser.add_argument("--setup-only", action="store_true", help="only the data (01/02) and unfiltered networks (03) "
                        "of the variants' data sets")
    parser.add_argument("--no-evaluation", action="store_true", help="skip notebooks 05 and 07")
    parser.add_argument("--no-attack", action="store_true", help="skip notebook 06 (fresh attackers)")
    parser.add_argument("--attack-outputs", nargs="+", default=["uint8"], choices=["uint8", "float"],
                        help="what notebook 06 attacks of each filter: the published 8-bit output (default) "
                             "and/or the float output")
    parser.add_argument("--verbose", action="store_true", help="show the kernels' output and papermill's progress bars")
    args = parser.parse_args(argv)
    for v in args.variants:  # fail before hours of work on a typo
        if v not in config.VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {', '.join(config.VARIANTS)}")
    if args.data_seed < 0 or any(s < 0 for s in args.seeds):
        parser.error("seeds are non-negative integers")
    results = config.results_dir()
    executed = results / "notebooks"
    started = time.time()
    datasets = [d for d in config.DATASETS if any(config.get_variant(v).dataset == d for v in args.variants)]
    plan = Plan(quiet=not args.verbose)
    todo = [t for d in datasets for t in setup_runs(d, args)]
    for seed in [] if args.setup_only else args.seeds:
        for v in args.variants:
            if not args.retrain and runs.finished(v, seed, args.profile, args.data_seed):
                print(f"kept the finished run {config.run_name(v, seed)} (--retrain to train it again)")
                continue
            todo.append((f"04 {config.run_name(v, seed)}", "04_adversarial_training",
                         config.run_dir(v, seed) / "04_adversarial_training.ipynb",
                         {"PROFILE": args.profile, "TRAIN_SEED": seed, "DATA_SEED": args.data_seed, "VARIANT": v}))
    common = {"PROFILE": args.profile, "DATA_SEED": args.data_seed, "TRAIN_SEEDS": args.seeds,
              "VARIANTS": args.variants, "DATASETS": datasets}
    if args.setup_only:
        args.no_evaluation = args.no_attack = True
    if not args.no_evaluation:  # 05 reports every finished run of these variants and seeds
        todo.append(("05 evaluation", "05_evaluation", executed / "05_evaluation.ipynb", common))
    if not args.no_attack:
        todo.append(("06 attack", "06_attack_the_filter", executed / "06_attack_the_filter.ipynb",
                     {**common, "OUTPUTS": args.attack_outputs}))
    if not args.no_evaluation:
        todo.append(("07 anonymise", "07_anonymise_and_export", executed / "07_anonymise_and_export.ipynb", common))
    try:  # nothing starts if a run would overwrite a run of another profile or seed
        for label, name, output, parameters in todo:
            if name == "03_networks":
                d = parameters["DATASET"]
                runs.check_free(results / config.unfiltered_name(d), "none", d, args.profile, args.data_seed,
                                args.data_seed)
            elif name == "04_adversarial_training":
                v = parameters["VARIANT"]
                runs.check_free(output.parent, v, config.get_variant(v).dataset, args.profile,
                                parameters["TRAIN_SEED"], args.data_seed)
    except runs.RunConflict as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plan.total = len(todo)
    try:
        for label, name, output, parameters in todo:
            plan.run(label, name, output, parameters)
    except NotebookFailed as err:
        print("failed", flush=True)
        print(err, file=sys.stderr)
        return 1
    path, md = report.write_summary(results, plan.minutes, header(argv))
    print(f"\n{path}:\n{md}")
    print(f"\ntotal {(time.time() - started) / 60:.1f} min for {plan.count} notebook runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
