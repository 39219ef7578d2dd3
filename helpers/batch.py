"""Run the notebooks with papermill, in order, and gather every finished run into results/summary.*.

    python -m helpers.batch S1 S5 R1 R7                 # data and unfiltered networks if needed, 04 per
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
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import config, report, runs

NOTEBOOKS = config.REPO / "notebooks"


class NotebookFailed(RuntimeError):
    pass


@dataclass
class Task:
    """One papermill run of the batch: `after` names the tasks whose files it reads (04 after its data set's
    03, an attack after the run it attacks); `kind` sets what a Ray engine reserves for it."""
    label: str
    name: str            # the notebook
    output: Path         # the executed notebook
    parameters: dict
    kind: str            # "setup" (01/02, 03), "train" (04), "attack" (06), "report" (05, 07)
    after: tuple = ()


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

    def run(self, task: Task) -> None:
        self.count += 1
        print(f"[{self.count}/{self.total}] {task.label} ...", end=" ", flush=True)
        minutes = run_notebook(task.name, task.output, task.parameters, self.quiet)
        self.minutes[task.label] = minutes
        print(f"{minutes:.1f} min", flush=True)


def tvpr_prepared_from(args) -> bool:
    """True if data/tvpr/ holds what this call asks for (TVPR_RAW or the stand-in of this profile and seed)."""
    from helpers import datasets
    source = datasets.tvpr_source()
    if source is None:  # missing, or damaged: prepare again
        return False
    if args.tvpr_raw:
        return source == Path(args.tvpr_raw).expanduser().resolve()
    return source.parent.name == "topview_raw" and source.name == datasets.standin_name(args.profile, args.data_seed)


def squares_prepared(args) -> bool:
    """True if notebook 01's sets for this profile and data seed exist and can be read; a damaged or
    outdated file is made again (and said so)."""
    from helpers import datasets
    try:
        datasets.eval_sets(config.get_profile(args.profile), args.data_seed)
    except FileNotFoundError:
        return False
    except ValueError as err:
        print(f"{err}\nnotebook 01 makes it again.")
        return False
    return True


def setup_runs(dataset: str, args) -> list[Task]:
    """The data (notebook 01 or 02) and unfiltered networks (03) of one data set, where missing."""
    todo = []
    common = {"PROFILE": args.profile, "DATA_SEED": args.data_seed}
    executed = config.results_dir() / "notebooks"
    if dataset == "squares":
        if args.redo_setup or not squares_prepared(args):
            todo.append(Task("01 squares", "01_synthetic_squares", executed / "01_synthetic_squares.ipynb", common,
                             "setup"))
    elif args.redo_setup or not tvpr_prepared_from(args):
        raw = str(Path(args.tvpr_raw).expanduser().resolve()) if args.tvpr_raw else None
        todo.append(Task("02 TVPR", "02_prepare_tvpr", executed / "02_prepare_tvpr.ipynb", {**common, "TVPR_RAW": raw},
                         "setup"))
    if args.redo_setup or todo or runs.unfiltered(dataset, args.profile, args.data_seed) is None:
        name = "03_networks.ipynb" if dataset == "squares" else f"03_networks_{dataset}.ipynb"
        todo.append(Task(f"03 {dataset}", "03_networks", executed / name, {**common, "DATASET": dataset}, "setup",
                         tuple(t.label for t in todo)))
    return todo


def attack_parts(args, datasets, attack: dict, setup: dict, trained: dict, executed: Path) -> list[Task]:
    """Notebook 06 cut into tasks that can run at once: the unfiltered data and classic transforms of each
    data set, then each filter run (after its 04). Each part writes its attacks to results/06_attack/
    (one file per transform and seed); the whole 06 that follows finds them all there and only tabulates."""
    parts = []
    for d in datasets:
        classic = Task(f"06 attack classic {d}", "06_attack_the_filter", executed / "06_parts" / f"classic_{d}.ipynb",
                       {**attack, "DATASETS": [d], "VARIANTS": [], "OUTPUTS": ["uint8"]}, "attack", setup[d])
        parts.append(classic)
        for seed in args.seeds:
            for v in args.variants:
                if config.get_variant(v).dataset != d:
                    continue
                name = config.run_name(v, seed)
                parts.append(Task(f"06 attack {name}", "06_attack_the_filter", executed / "06_parts" / f"{name}.ipynb",
                                  {**attack, "DATASETS": [d], "VARIANTS": [v], "TRAIN_SEEDS": [seed], "CLASSIC": ["none"]},
                                  "attack", (classic.label,) + ((trained[(v, seed)],) if (v, seed) in trained else ())))
    return parts


def header(argv) -> str:
    """The first lines of summary.md: when, where and from which commit this batch ran."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=NOTEBOOKS.parent, capture_output=True,
                                text=True, check=True).stdout.strip()
        # results/ holds the committed run's tables, which this batch has just rewritten: not a code change
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
                               cwd=NOTEBOOKS.parent, capture_output=True, text=True).stdout.strip()
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
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: one notebook after another (default); ray: every run a Ray task, run as soon as "
                             "what it needs is finished (see helpers/cluster.py)")
    parser.add_argument("--address", help="Ray: the cluster to join ('auto': the one `ray start` runs here); "
                        "default: a Ray instance of this machine for this batch")
    parser.add_argument("--jobs", type=int, help="Ray without --address: notebook runs at once (default: CPU cores)")
    parser.add_argument("--verbose", action="store_true", help="show the kernels' output and papermill's progress bars")
    args = parser.parse_args(argv)
    args.variants = list(dict.fromkeys(args.variants))  # a name or seed given twice is one run
    args.seeds = list(dict.fromkeys(args.seeds))
    for v in args.variants:  # fail before hours of work on a typo
        if v not in config.VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {', '.join(config.VARIANTS)}")
    if args.data_seed < 0 or any(s < 0 for s in args.seeds):
        parser.error("seeds are non-negative integers")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs is a positive number")
    if args.engine == "local" and (args.address or args.jobs):
        parser.error("--address and --jobs are for --engine ray")
    if args.address and args.jobs:
        parser.error("--jobs sizes a Ray instance of this batch's own; with --address the cluster's resources decide")
    results = config.results_dir()
    executed = results / "notebooks"
    started = time.time()
    datasets = [d for d in config.DATASETS if any(config.get_variant(v).dataset == d for v in args.variants)]
    plan = Plan(quiet=not args.verbose)
    todo, setup = [], {}  # setup: data set -> labels of its 01/02 and 03 tasks in this batch
    for d in datasets:
        tasks = setup_runs(d, args)
        todo += tasks
        setup[d] = tuple(t.label for t in tasks)
    trained = {}  # (variant, seed) -> label of its 04 task in this batch
    for seed in [] if args.setup_only else args.seeds:
        for v in args.variants:
            if not args.retrain and runs.finished(v, seed, args.profile, args.data_seed):
                print(f"kept the finished run {config.run_name(v, seed)} (--retrain to train it again)")
                continue
            label = f"04 {config.run_name(v, seed)}"
            trained[(v, seed)] = label
            todo.append(Task(label, "04_adversarial_training", config.run_dir(v, seed) / "04_adversarial_training.ipynb",
                             {"PROFILE": args.profile, "TRAIN_SEED": seed, "DATA_SEED": args.data_seed, "VARIANT": v},
                             "train", setup[config.get_variant(v).dataset]))
    common = {"PROFILE": args.profile, "DATA_SEED": args.data_seed, "TRAIN_SEEDS": args.seeds,
              "VARIANTS": args.variants, "DATASETS": datasets}
    all_setup = tuple(label for d in datasets for label in setup[d])
    if args.setup_only:
        args.no_evaluation = args.no_attack = True
    if not args.no_evaluation:  # 05 reports every finished run of these variants and seeds
        todo.append(Task("05 evaluation", "05_evaluation", executed / "05_evaluation.ipynb", common, "report",
                         all_setup + tuple(trained.values())))
    if not args.no_attack:
        attack = {**common, "OUTPUTS": args.attack_outputs}
        parts = attack_parts(args, datasets, attack, setup, trained, executed) if args.engine == "ray" else []
        todo += parts
        todo.append(Task("06 attack", "06_attack_the_filter", executed / "06_attack_the_filter.ipynb", attack, "attack",
                         all_setup + tuple(trained.values()) + tuple(t.label for t in parts)))
    if not args.no_evaluation:
        todo.append(Task("07 anonymise", "07_anonymise_and_export", executed / "07_anonymise_and_export.ipynb", common,
                         "report", tuple(t.label for t in todo if t.kind in ("setup", "train", "attack")
                                         or t.name == "05_evaluation")))
    try:  # nothing starts if a run would overwrite a run of another profile or seed
        for t in todo:
            if t.name == "03_networks":
                d = t.parameters["DATASET"]
                runs.check_free(results / config.unfiltered_name(d), "none", d, args.profile, args.data_seed,
                                args.data_seed)
            elif t.name == "04_adversarial_training":
                v = t.parameters["VARIANT"]
                runs.check_free(t.output.parent, v, config.get_variant(v).dataset, args.profile,
                                t.parameters["TRAIN_SEED"], args.data_seed)
    except runs.RunConflict as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plan.total = len(todo)
    try:
        if args.engine == "ray":
            from helpers import cluster
            cluster.run(todo, plan, address=args.address, jobs=args.jobs)
        else:
            for t in todo:
                plan.run(t)
    except NotebookFailed as err:
        print("failed", flush=True)
        print(err, file=sys.stderr)
        return 1
    path, md = report.write_summary(results, plan.minutes, header(argv))
    print(f"\n{path}:\n{md}")
    print(f"\ntotal {(time.time() - started) / 60:.1f} min for {plan.count} notebook runs ({args.engine} engine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
