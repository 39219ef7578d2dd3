"""Run the notebooks with papermill and gather every run's metrics.json into one table.

    python -m helpers.batch S1 S2 S2c R1            # data and baselines if needed, 04 per variant, 05-07
    python -m helpers.batch S1 S2 S2c --seeds 0 1 2  # three training runs per variant, attacked in 06
    python -m helpers.batch R1 R2 R3 R4 R5 R6 --tvpr-raw ~/TVPR   # TVPR itself instead of the stand-in

Runs of notebook 04 that already finished (same profile, seed and data seed) are kept, so calling it
again for finished variants only runs what is missing: the attack (06) and the reports.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from helpers import config

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SUMMARY_COLUMNS = ["variant", "dataset", "profile", "seed", "detector_ap", "ranked_ap", "reid_auc", "distance",
                   "baseline_ap", "best_epoch", "train_minutes"]


def run_notebook(name: str, output: Path, parameters: dict, progress: bool = True) -> Path:
    """Execute notebooks/<name>.ipynb into `output` with papermill, in the notebooks folder."""
    import papermill as pm
    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"No notebook {source}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {name} {parameters} -> {output}", flush=True)
    started = time.time()
    pm.execute_notebook(str(source), str(output), parameters=parameters, cwd=str(NOTEBOOKS),
                        kernel_name="python3", progress_bar=progress, log_output=False)
    print(f"  done in {(time.time() - started) / 60:.1f} min", flush=True)
    return output


def summary_rows(results: Path) -> list[dict]:
    rows = []
    for path in sorted(results.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        test = m.get("test", {})
        row = {k: m.get(k) for k in ("variant", "dataset", "profile", "seed", "best_epoch", "train_minutes")}
        row.update({k: test.get(k) for k in ("detector_ap", "ranked_ap", "reid_auc")})
        row["baseline_ap"] = m["test"]["detector_ap"] if m.get("variant") == "none" else m.get("baseline_ap")
        row["distance"] = test.get("distance") if m.get("variant") != "none" else None
        rows.append(row)
    return rows


def write_summary(results: Path) -> tuple[Path, str]:
    """results/summary.csv and summary.md from every results/*/metrics.json; returns the markdown."""
    import pandas as pd
    df = pd.DataFrame(summary_rows(results), columns=SUMMARY_COLUMNS)
    order = {"none": 0}
    df = df.sort_values(by=["dataset", "variant"], key=lambda s: s.map(lambda v: (order.get(v, 1), str(v))))
    df.to_csv(results / "summary.csv", index=False)
    md = df.round(3).to_markdown(index=False)
    (results / "summary.md").write_text(md + "\n")
    return results / "summary.csv", md


def shrink_png(data: str, max_width: int = 800, colours: int = 64, keep_below: int = 40_000) -> str:
    """A base64 PNG made small enough to commit: at most max_width pixels wide, a palette of `colours`.
    Photo-like figures (the TVPR frames) are otherwise several hundred KB each."""
    import base64
    import io
    from PIL import Image
    raw = base64.b64decode(data)
    if len(raw) <= keep_below:
        return data
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
    out = io.BytesIO()
    img.quantize(colours, dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(raw) else data


def clean_for_commit(nb_path: Path, target: Path) -> Path:
    """Copy an executed notebook for committing: drop papermill's parameters cell, stderr, progress
    bars and volatile metadata; shrink large figures."""
    import nbformat
    nb = nbformat.read(nb_path, as_version=4)
    # The committed notebook keeps its own parameters cell; papermill's injected one would pin PROFILE.
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    widget = "application/vnd.jupyter.widget-view+json"
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs
                        if not (o.output_type == "stream" and o.name == "stderr")
                        and widget not in o.get("data", {})]
        for o in cell.outputs:
            o.get("metadata", {}).pop("papermill", None)
            if "image/png" in o.get("data", {}):
                o["data"]["image/png"] = shrink_png(o["data"]["image/png"])
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, target)
    return target


def publish(results: Path, variant: str = "S2") -> list[Path]:
    """Put the outputs of a finished `make run` into notebooks/ so readers see results without running."""
    sources = {"01_synthetic_squares": results / "notebooks", "02_prepare_tvpr": results / "notebooks",
               "03_networks": results / "notebooks", "04_adversarial_training": results / variant,
               "05_evaluation": results / "notebooks", "06_attack_the_filter": results / "notebooks",
               "07_anonymise_and_export": results / "notebooks"}
    done = []
    for name, folder in sources.items():
        executed = folder / f"{name}.ipynb"
        if executed.exists():
            done.append(clean_for_commit(executed, NOTEBOOKS / f"{name}.ipynb"))
    return done


def prepare_dataset(dataset: str, args, common: dict, executed: Path, progress: bool) -> None:
    """The data (notebook 01 or 02) and the networks without a filter (03) of one data set, if missing."""
    if dataset == "squares":
        from helpers.squares import sets_path
        if args.redo_setup or not sets_path(config.data_dir(), args.profile, args.data_seed).exists():
            run_notebook("01_synthetic_squares", executed / "01_synthetic_squares.ipynb", common, progress)
    else:
        from helpers.datasets import tvpr_dir
        manifest = tvpr_dir() / "manifest.json"
        source = json.loads(manifest.read_text())["source"]["raw_root"] if manifest.exists() else None
        wanted = str(Path(args.tvpr_raw).expanduser().resolve()) if args.tvpr_raw else None
        if args.redo_setup or source is None or (wanted is not None and Path(source) != Path(wanted)) \
                or (wanted is None and f"{args.profile}_seed{args.data_seed}" not in source):
            run_notebook("02_prepare_tvpr", executed / "02_prepare_tvpr.ipynb", {**common, "TVPR_RAW": wanted},
                         progress)
    baseline = config.results_dir() / config.baseline_name(dataset) / "metrics.json"
    if args.redo_setup or not baseline.exists() or json.loads(baseline.read_text()).get("profile") != args.profile:
        name = "03_networks.ipynb" if dataset == "squares" else f"03_networks_{dataset}.ipynb"
        run_notebook("03_networks", executed / name, {**common, "DATASET": dataset}, progress)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=["S1", "S2", "S2c", "R1"], help="variants for notebook 04")
    parser.add_argument("--profile", default=config.default_profile(), choices=sorted(config.PROFILES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                        help="training seeds: one run of notebook 04 per variant and seed (default: 0)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the data sets and of notebook 03")
    parser.add_argument("--retrain", action="store_true", help="rerun notebook 04 even for finished runs")
    parser.add_argument("--redo-setup", action="store_true", help="rerun 01 and 03 even if their outputs exist")
    parser.add_argument("--tvpr-raw", metavar="FOLDER", help="TVPR frames/videos + annotations.csv for "
                        "notebook 02 (default: the offline stand-in)")
    parser.add_argument("--no-evaluation", action="store_true", help="skip notebooks 05 and 07")
    parser.add_argument("--no-attack", action="store_true", help="skip notebook 06 (fresh attackers)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--publish", metavar="VARIANT", help="only copy the executed notebooks (04: this "
                        "variant) into notebooks/, cleaned for committing")
    args = parser.parse_args(argv)
    if args.publish:
        for path in publish(config.results_dir(), args.publish):
            print("published", path)
        return 0
    for v in args.variants:
        config.get_variant(v)  # fail before hours of work on a typo
    results = config.results_dir()
    executed = results / "notebooks"
    common = {"PROFILE": args.profile, "SEED": args.data_seed}
    progress = not args.quiet
    datasets = [d for d in config.DATASETS if any(config.get_variant(v).dataset == d for v in args.variants)]
    for dataset in datasets:
        prepare_dataset(dataset, args, common, executed, progress)
    for seed in args.seeds:
        for v in args.variants:
            if not args.retrain and config.finished_run(v, seed, args.profile, args.data_seed):
                print(f"kept the finished run {config.run_name(v, seed)} (--retrain to train it again)")
                continue
            run_notebook("04_adversarial_training",
                         config.run_dir(v, seed) / "04_adversarial_training.ipynb",
                         {"PROFILE": args.profile, "SEED": seed, "DATA_SEED": args.data_seed, "VARIANT": v},
                         progress)
    if not args.no_evaluation:
        # 05 reports every finished run of this profile and data seed, from this call or earlier ones
        run_notebook("05_evaluation", executed / "05_evaluation.ipynb", common, progress)
    if not args.no_attack:
        run_notebook("06_attack_the_filter", executed / "06_attack_the_filter.ipynb",
                     {"PROFILE": args.profile, "DATA_SEED": args.data_seed, "SEEDS": args.seeds,
                      "VARIANTS": args.variants, "DATASETS": datasets}, progress)
    if not args.no_evaluation:
        run_notebook("07_anonymise_and_export", executed / "07_anonymise_and_export.ipynb", common, progress)
    path, md = write_summary(results)
    print(f"\n{path}:\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
