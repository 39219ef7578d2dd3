"""The run registry: which training runs exist under results/, which are finished, and which is best.

A run is one execution of notebook 03 (the unfiltered networks of a data set) or of notebook 04 (one
filter variant, one training seed). It is finished when its metrics.json exists, which notebooks write
last and atomically. Every choice made here reads validation figures only; test figures are reported,
never used to choose.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from helpers import config
from helpers.files import write_atomically

FORMAT = 2  # metrics.json layout: train_seed / data_seed (format 1 had one `seed`)


@dataclass(frozen=True)
class Run:
    name: str            # the folder under results/
    variant: str         # "none" for the unfiltered networks of notebook 03
    dataset: str
    profile: str
    train_seed: int
    data_seed: int
    path: Path
    metrics: dict

    @property
    def unfiltered(self) -> bool:
        return self.variant == "none"

    def val(self, key: str) -> float:
        return self.metrics["val"][key]

    def test(self, key: str) -> float:
        return self.metrics["test"][key]


def write_json(path, data: dict) -> Path:
    """Write JSON whole (files.write_atomically): a reader never sees half a file."""
    text = json.dumps(data, indent=1, default=float)
    return write_atomically(path, lambda tmp: tmp.write_text(text))


class RunConflict(RuntimeError):
    """A results folder already holds another run (other profile or seeds, or a format this version cannot read)."""


def _metrics(path: Path) -> dict | None:
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) and "variant" in m and "profile" in m and "dataset" in m else None


def _identity(m: dict) -> tuple:
    """(variant, data set, profile, training seed, data seed) of a metrics.json (format 1 had one `seed`)."""
    return (m["variant"], m["dataset"], m["profile"], int(m.get("train_seed", m.get("seed", 0))),
            int(m.get("data_seed", m.get("seed", 0))))


def read(folder) -> Run | None:
    """The finished run in `folder`, or None (no metrics.json yet, or not a run folder)."""
    folder = Path(folder)
    path = folder / "metrics.json"
    if not path.exists():
        return None
    m = _metrics(path)
    if m is None:
        return None
    needed = ("detector.keras", "reid.keras") if m["variant"] == "none" else ("filter.keras",)
    if not all((folder / f).exists() for f in needed):
        return None
    return Run(folder.name, *_identity(m), folder, m)


def check_free(folder, variant: str, dataset: str, profile: str, train_seed: int, data_seed: int) -> None:
    """Refuse (RunConflict) to write this run into `folder` if the folder holds a finished run of another
    variant, data set, profile or seed, or a metrics.json this version cannot read: it would be overwritten.
    An empty folder, or one holding this very run (to resume or to redo), is free."""
    folder = Path(folder)
    path = folder / "metrics.json"
    if not path.exists():
        return
    m = _metrics(path)
    what = f"{variant} ({dataset}), profile {profile}, training seed {train_seed}, data seed {data_seed}"
    advice = (f"Move {folder} away, or keep each profile's data and results apart (ANON_ROOT=<folder> for "
              "notebooks and python -m helpers.batch).")
    if m is None:
        raise RunConflict(f"{path} cannot be read as a run (corrupt, or from an older version of this project); "
                          f"this run is {what}. {advice}")
    mine = (variant, dataset, profile, train_seed, data_seed)
    theirs = _identity(m)
    if mine != theirs:
        raise RunConflict(f"{folder} holds a finished run of {theirs[0]} ({theirs[1]}), profile {theirs[2]}, training "
                          f"seed {theirs[3]}, data seed {theirs[4]}; this run is {what} and would overwrite it. {advice}")


def all_runs(results=None) -> list[Run]:
    results = Path(results) if results is not None else config.results_dir()
    return [r for r in (read(p.parent) for p in sorted(results.glob("*/metrics.json"))) if r is not None]


def runs(dataset: str | None = None, profile: str | None = None, data_seed: int | None = None,
         variants=None, train_seeds=None, unfiltered: bool = False, results=None) -> list[Run]:
    """Finished runs matching every given filter; filter runs unless unfiltered=True."""
    out = []
    for r in all_runs(results):
        if r.unfiltered != unfiltered:
            continue
        if dataset is not None and r.dataset != dataset:
            continue
        if profile is not None and r.profile != profile:
            continue
        if data_seed is not None and r.data_seed != data_seed:
            continue
        if variants is not None and r.variant not in variants:
            continue
        if train_seeds is not None and r.train_seed not in train_seeds:
            continue
        out.append(r)
    return sorted(out, key=lambda r: (r.dataset, r.variant, r.train_seed))


def finished(variant: str, train_seed: int, profile: str, data_seed: int, results=None) -> Run | None:
    """The finished run of notebook 04 for this variant, training seed, profile and data seed, else None."""
    root = Path(results) if results is not None else config.results_dir()
    r = read(root / config.run_name(variant, train_seed))
    if r is None or (r.variant, r.train_seed, r.profile, r.data_seed) != (variant, train_seed, profile, data_seed):
        return None
    return r


def unfiltered(dataset: str, profile: str, data_seed: int, results=None) -> Run | None:
    """Notebook 03's finished run (networks without a filter) for this data set, profile and data seed."""
    root = Path(results) if results is not None else config.results_dir()
    r = read(root / config.unfiltered_name(dataset))
    if r is None or (r.dataset, r.profile, r.data_seed) != (dataset, profile, data_seed):
        return None
    return r


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else math.nan


def best(dataset: str, by: str = "distance", profile: str | None = None, data_seed: int | None = None,
         variants=None, lower_is_better: bool = True, train_seeds=None, results=None) -> str | None:
    """The variant whose runs have the best mean *validation* figure `by` (a key of metrics.json's
    "val"), over its training seeds; None if no run has that figure."""
    return _best_variant(runs(dataset, profile, data_seed, variants, train_seeds, results=results), by,
                         lower_is_better)


def _best_variant(found, by: str, lower_is_better: bool) -> str | None:
    by_variant: dict = {}
    for r in found:
        by_variant.setdefault(r.variant, []).append(r.metrics.get("val", {}).get(by))
    means = {v: _mean(vals) for v, vals in by_variant.items()}
    means = {v: m for v, m in means.items() if not math.isnan(m)}
    if not means:
        return None
    sign = 1 if lower_is_better else -1
    return min(means, key=lambda v: (sign * means[v], v))


def best_run(dataset: str, by: str = "distance", profile: str | None = None, data_seed: int | None = None,
             variants=None, lower_is_better: bool = True, train_seeds=None, results=None) -> Run | None:
    """The one run (variant and training seed) with the best validation figure `by` among the runs of
    the best variant: the filter notebook 07 shows and exports."""
    found = runs(dataset, profile, data_seed, variants, train_seeds, results=results)
    variant = _best_variant(found, by, lower_is_better)
    if variant is None:
        return None
    found = [r for r in found if r.variant == variant and r.metrics.get("val", {}).get(by) is not None]
    sign = 1 if lower_is_better else -1
    return min(found, key=lambda r: (sign * r.val(by), r.train_seed))


def write_csv(path, df) -> Path:
    """A pandas table written whole, like write_json."""
    return write_atomically(path, lambda tmp: df.to_csv(tmp, index=False))


def cached(path, key: dict, compute):
    """compute() once per key: a result is written (atomically) as soon as it exists, so a rerun after
    an interruption continues with the next one."""
    path = Path(path)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == json.loads(json.dumps(key, default=float)):
            return saved["result"]
    result = compute()
    write_json(path, {"key": key, "result": result})
    return json.loads(json.dumps(result, default=float))
