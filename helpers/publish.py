"""Copy executed notebooks back into notebooks/ for committing: one run's outputs, small and clean,
and write RESULTS.md from that run's results/summary.csv and attack_summary.csv.

    python -m helpers.publish S1        # after `make run`: notebooks 01-07 (04: variant S1's run)
"""
from __future__ import annotations

import sys
from pathlib import Path

from helpers import config

NOTEBOOKS = config.REPO / "notebooks"


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


def publish(results: Path, variant: str = "S1") -> list[Path]:
    """Put the outputs of a finished `make run` into notebooks/ so readers see results without running."""
    sources = {"01_synthetic_squares": results / "notebooks", "02_prepare_tvpr": results / "notebooks",
               "03_networks": results / "notebooks", "04_adversarial_training": results / config.run_name(variant),
               "05_evaluation": results / "notebooks", "06_attack_the_filter": results / "notebooks",
               "07_anonymise_and_export": results / "notebooks"}
    done = []
    for name, folder in sources.items():
        executed = folder / f"{name}.ipynb"
        if executed.exists():
            done.append(clean_for_commit(executed, NOTEBOOKS / f"{name}.ipynb"))
    return done



def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", nargs="?", default="S1", help="whose run of notebook 04 is published")
    args = parser.parse_args(argv)
    from helpers import report
    for path in publish(config.results_dir(), args.variant):
        print("published", path)
    print("written", report.write_results())
    return 0


if __name__ == "__main__":
    sys.exit(main())
