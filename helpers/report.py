"""Tables from finished runs: results/summary.csv (notebooks 03/04), attack_summary.csv (06), and
their seed means, strongest attackers and best filters. Every choice here reads validation columns.
"""
from __future__ import annotations

import math
from pathlib import Path

from helpers import config, metrics, runs

SUMMARY_COLUMNS = ["variant", "dataset", "profile", "train_seed", "data_seed", "detector_ap", "ranked_ap",
                   "reid_auc", "distance", "val_distance", "val_fresh_auc", "val_fresh_distance", "unfiltered_ap",
                   "distance_ranks", "best_epoch", "train_minutes", "exact_auc"]

ATTACK_COLUMNS = ["dataset", "transform", "kind", "output", "attacker", "sides", "seed", "fresh_auc", "fresh_val_auc",
                  "best_step", "steps", "fresh_ap", "fresh_ranked_ap", "fresh_val_ap", "detector_best_step",
                  "detector_steps", "co_trained_auc", "co_trained_ap", "co_trained_distance", "profile"]


# --- notebooks 03 and 04: one row per finished run ------------------------------------------------

def summary_rows(results=None) -> list[dict]:
    rows = []
    for r in runs.all_runs(results):
        m, test, val = r.metrics, r.metrics.get("test", {}), r.metrics.get("val", {})
        unfiltered_ap = test.get("detector_ap") if r.unfiltered else m.get("unfiltered_ap", m.get("baseline_ap"))
        rows.append({"variant": r.variant, "dataset": r.dataset, "profile": r.profile, "train_seed": r.train_seed,
                     "data_seed": r.data_seed, "detector_ap": test.get("detector_ap"), "ranked_ap": test.get("ranked_ap"),
                     "reid_auc": test.get("reid_auc"), "distance": None if r.unfiltered else test.get("distance"),
                     "val_distance": None if r.unfiltered else val.get("distance"),
                     "val_fresh_auc": val.get("fresh_val_auc"), "val_fresh_distance": val.get("fresh_distance"),
                     "unfiltered_ap": unfiltered_ap,
                     "distance_ranks": config.distance_ranks(unfiltered_ap),
                     "best_epoch": m.get("best_epoch"), "train_minutes": m.get("train_minutes"),
                     "exact_auc": test.get("exact_auc")})
    return rows


def write_summary(results=None, minutes: dict | None = None, header: str = "") -> tuple:
    """results/summary.csv and summary.md from every finished run; returns (csv path, markdown).
    `minutes`: {notebook run: minutes} of this batch, listed in summary.md; `header`: its first lines."""
    import pandas as pd
    results = Path(results) if results is not None else config.results_dir()
    df = pd.DataFrame(summary_rows(results), columns=SUMMARY_COLUMNS)
    df = df.sort_values(by=["dataset", "variant", "train_seed"],
                        key=lambda s: s.map(lambda v: (v != "none", str(v)) if s.name == "variant" else v))
    runs.write_csv(results / "summary.csv", df)
    md = df.round(3).to_markdown(index=False)
    if not df.empty and not df.distance_ranks.all():
        md += (f"\n\nRows with distance_ranks = False: the unfiltered detector's AP is below "
               f"{config.DISTANCE_FLOOR_AP}, so the filter distance cannot rank filters on this data.")
    text = (header or "Run: unknown.\n\n") + md + "\n"
    if minutes:
        text += "\n| notebook run | minutes |\n| --- | --- |\n" + "".join(
            f"| {k} | {v:.1f} |\n" for k, v in minutes.items()) + f"| total | {sum(minutes.values()):.1f} |\n"
    (results / "summary.md").write_text(text)
    return results / "summary.csv", md


# --- notebook 06: one row per transform, output, attacker, sides and seed ------------------------

def attack_rows(result: dict, dataset: str, profile: str, co_trained: dict | None = None,
                unfiltered_ap: float | None = None) -> list[dict]:
    """Rows of attack_summary.csv for one attacked transform. co_trained: the run's test figures."""
    co = co_trained or {}
    det = result["detector"]
    distance = co.get("distance")
    if distance is None and co.get("reid_auc") is not None and unfiltered_ap is not None:
        distance = metrics.filter_distance(co["reid_auc"], co["detector_ap"], unfiltered_ap)
    out = []
    for key, r in result["reid"].items():
        attacker, sides = key.split("/")
        out.append({"dataset": dataset, "transform": result["transform"], "kind": result["kind"],
                    "output": result.get("output", "float"), "attacker": attacker, "sides": sides,
                    "seed": result["seed"], "fresh_auc": r["test_auc"], "fresh_val_auc": r["val_auc"],
                    "best_step": r["best_step"], "steps": r.get("steps"), "fresh_ap": det["test_ap"],
                    "fresh_ranked_ap": det["test_ranked_ap"], "fresh_val_ap": det.get("val_ap"),
                    "detector_best_step": det.get("best_step"), "detector_steps": det.get("steps"),
                    "co_trained_auc": co.get("reid_auc"), "co_trained_ap": co.get("detector_ap"),
                    "co_trained_distance": distance, "profile": profile})
    return out


MEANS = ("fresh_auc", "fresh_val_auc", "fresh_ap", "fresh_val_ap", "co_trained_auc", "co_trained_ap",
         "co_trained_distance")


def aggregate(df, values=MEANS, by=("dataset", "transform", "output", "attacker", "sides")):
    """Mean, standard deviation (ddof 1; 0 for one seed) and number of seeds of each value."""
    import pandas as pd
    by = [b for b in by if b in df.columns]
    values = [v for v in values if v in df.columns]
    g = df.groupby(by, sort=False)[values]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    out = pd.concat({"mean": mean, "std": std}, axis=1)
    out.columns = [f"{v}_{stat}" for stat, v in out.columns]
    out["seeds"] = df.groupby(by, sort=False)["seed"].nunique()
    return out.reset_index()


def strongest(agg, sides: str):
    """Per transform (and output): the attacker with the highest mean *validation* AUC for these sides;
    its test AUC is what the tables and the Pareto figure report."""
    a = agg[agg.sides == sides]
    keys = [k for k in ("dataset", "transform", "output") if k in a.columns]
    return a.loc[a.groupby(keys, sort=False).fresh_val_auc_mean.idxmax()]


def best_filter(agg, dataset: str, output: str = "uint8", sides: str = "both", filters=None):
    """The filter variant closest to the ideal point by *validation* figures (strongest attacker's mean
    validation AUC, fresh detector's mean validation AP); returns (name, validation distance) or None."""
    a = agg[(agg.dataset == dataset) & (agg.output == output)]
    s = strongest(a, sides).set_index("transform")
    if "none" not in s.index:
        return None
    names = [n for n in s.index if (filters is None or n in filters) and n not in config.CLASSIC_TRANSFORMS]
    if not names:
        return None
    ideal = s.loc["none", "fresh_val_ap_mean"]
    dist = {n: metrics.filter_distance(s.loc[n, "fresh_val_auc_mean"], s.loc[n, "fresh_val_ap_mean"], ideal) for n in names}
    name = min(dist, key=lambda n: (dist[n], n))
    return name, dist[name]


def mean_std(mean, std, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def chosen_filter(summary, dataset: str, output: str = "uint8", filters=None, agg=None) -> dict | None:
    """The filter chosen on validation for `dataset` (best_filter) and its test figures on `output`: its
    strongest attacker's mean AUC (`worst`), the highest single seed, the fresh AP; None if none was attacked."""
    agg = aggregate(summary) if agg is None else agg
    pick = best_filter(agg, dataset, output, filters=filters)
    if pick is None:
        return None
    name, val_distance = pick
    t = agg[(agg.dataset == dataset) & (agg.output == output) & (agg["transform"] == name)]
    rows = summary[(summary.dataset == dataset) & (summary.output == output) & (summary["transform"] == name)]
    return {"name": name, "val_distance": val_distance, "table": t, "worst": t.fresh_auc_mean.max(),
            "worst_seed": rows.fresh_auc.max(), "ap": t.fresh_ap_mean.iloc[0], "ap_std": t.fresh_ap_std.iloc[0],
            "seeds": int(t.seeds.max())}


def verdicts(summary, bars: dict, filters=None, output: str = "uint8") -> list[str]:
    """One sentence per data set: the filter chosen on validation, its test figures on `output`, and
    whether they meet `bars[dataset]` = dict(auc=, seed_auc=, ap=, seeds=, ahead=): a bar needs that many
    training seeds; with ahead=True the filter must also be ahead of every classic transform attacked
    beside it on the Pareto figure: its strongest attacker's mean AUC below each one's, so that none of
    them is as private (and its AP bar holds). A bar with ahead=True and no classic transform attacked
    is not shown."""
    agg = aggregate(summary)
    lines = []
    for d in [d for d in config.DATASETS if d in set(summary.dataset)]:
        c = chosen_filter(summary, d, output, filters, agg)
        if c is None:
            lines.append(f"{d}: no filter runs attacked yet.")
            continue
        name, t, worst, worst_seed, ap, seeds = c["name"], c["table"], c["worst"], c["worst_seed"], c["ap"], c["seeds"]
        bar = bars[d]
        none = agg[(agg.dataset == d) & (agg.output == output) & (agg["transform"] == "none")]
        per = ", ".join(f"{r.attacker}/{r.sides} {mean_std(r.fresh_auc_mean, r.fresh_auc_std)}" for _, r in t.iterrows())
        figures = worst <= bar["auc"] and worst_seed <= bar["seed_auc"] and ap >= bar["ap"]
        classic = agg[(agg.dataset == d) & (agg.output == output) & (agg["transform"] != "none")
                      & agg["transform"].isin(list(config.CLASSIC_TRANSFORMS))]
        classic_worst = classic.groupby("transform").fresh_auc_mean.max()
        ahead, unshown = "", []
        if bar.get("ahead") and classic_worst.empty:
            unshown.append("the Pareto figure has no classic transform to be ahead of")
        elif bar.get("ahead"):
            figures = figures and worst < classic_worst.min()
            ahead = (f" The most private classic transform, {classic_worst.idxmin()}, lets the strongest attacker "
                     f"reach {classic_worst.min():.3f}.")
        if seeds < bar["seeds"]:
            unshown.append(f"it asks for ≥ {bar['seeds']} training seeds")
        verdict = ("not met" if not figures else
                   "not shown: these figures meet it, but " + " and ".join(unshown) if unshown else "met")
        lines.append(
            f"**{d}**: chosen on validation: **{name}** (validation distance {c['val_distance']:.3f}, "
            f"{seeds} seeds). Test, {output} output: fresh AUC {per}; highest mean {worst:.3f} "
            f"(bar ≤ {bar['auc']}), highest single seed {worst_seed:.3f} (bar ≤ {bar['seed_auc']}); fresh AP "
            f"{mean_std(ap, c['ap_std'])} (bar ≥ {bar['ap']}). Without a transform the strongest "
            f"attacker reaches {none.fresh_auc_mean.max():.3f}.{ahead} **Bar {verdict}.**")
    return lines


# --- RESULTS.md: every figure from the committed CSVs --------------------------------------------

BARS = {"squares": dict(auc=0.55, seed_auc=0.60, ap=0.95, seeds=3),
        "tvpr": dict(auc=0.65, seed_auc=1.0, ap=0.85, seeds=3, ahead=True)}


def _table(df) -> str:
    return df.to_markdown(index=False) if not df.empty else "(none)"


STUDIES = "studies"  # results/studies/<name>/: the CSVs of a longer run beside the committed batch run


def results_markdown(results=None) -> str:
    """RESULTS.md from results/summary.md's first line, summary.csv and attack_summary.csv, then the same
    tables for every study under results/studies/ (each with its own summary.md naming its run)."""
    results = Path(results) if results is not None else config.results_dir()
    lines = ["# Results", "",
             "Generated by `python -m helpers.report` from `results/summary.csv` and `results/attack_summary.csv`,",
             "which the run below wrote; nothing here is typed by hand. Test-set figures, reported only: every",
             "choice (kept epoch, strongest attacker, best filter) was made on validation figures.", ""]
    lines += _sections(results, "##")
    for study in sorted(p.parent for p in (results / STUDIES).glob("*/summary.csv")):
        lines += [f"## Study `{study.name}` (results/{STUDIES}/{study.name}/)", ""] + _sections(study, "###")
    return "\n".join(lines)


def _sections(results: Path, h: str) -> list[str]:
    import pandas as pd
    summary = pd.read_csv(results / "summary.csv")
    lines = []
    md = results / "summary.md"
    if md.exists():
        text = md.read_text()
        lines += [text.splitlines()[0], ""]
        if "| notebook run | minutes |" in text:
            lines += ["Minutes per notebook run:", "", text[text.index("| notebook run | minutes |"):].strip(), ""]
    lines += [f"{h} Unfiltered networks (notebook 03, Table 5.1)", ""]
    none = summary[summary.variant == "none"][["dataset", "profile", "detector_ap", "ranked_ap", "reid_auc",
                                               "distance_ranks", "train_minutes"]]
    lines += [_table(none.round(3)), ""]
    filters = summary[summary.variant != "none"]
    lines += [f"{h} Filters as the thesis measures them (notebook 04, co-trained networks, float output)", "",
              "Mean ± std over training seeds. `val fresh AUC`: notebook 04's small fresh plain-CNN attacker on the "
              "8-bit validation output at the kept epoch; `val fresh distance`: the validation figure runs are "
              "compared by (that AUC and the detector's 8-bit AP).", ""]
    rows = []
    for (d, v), g in filters.groupby(["dataset", "variant"], sort=False):
        std = (lambda k: g[k].std(ddof=1) if len(g) > 1 else 0.0)
        rows.append({"data set": d, "variant": v, "seeds": len(g),
                     **{name: mean_std(g[k].mean(), std(k)) for name, k in (
                         ("AP", "detector_ap"), ("co-trained AUC", "reid_auc"), ("distance", "distance"),
                         ("val distance", "val_distance"), ("val fresh AUC", "val_fresh_auc"),
                         ("val fresh distance", "val_fresh_distance"),
                         ("minutes", "train_minutes"), ("exact AUC, 8-bit", "exact_auc")) if k in g}})
    lines += [_table(pd.DataFrame(rows)), ""]
    attack_path = results / "attack_summary.csv"
    if attack_path.exists():
        attack = pd.read_csv(attack_path)
        agg = aggregate(attack)
        for output in ("uint8", "float"):
            a = agg[agg.output == output]
            if a.empty:
                continue
            lines += [f"{h} Fresh attackers on the {'published 8-bit' if output == 'uint8' else 'float'} output "
                      "(notebook 06)", "",
                      "Test AUC of ReIDs trained from scratch on the frozen transform's output (mean ± std over "
                      "seeds), and the test AP of a detector fine-tuned on it.", ""]
            rows = []
            for (d, name), t in a.groupby(["dataset", "transform"], sort=False):
                row = {"data set": d, "transform": name, "seeds": int(t.seeds.max())}
                for _, r in t.iterrows():
                    row[f"{r.attacker} {r.sides}"] = mean_std(r.fresh_auc_mean, r.fresh_auc_std)
                row["fresh AP"] = mean_std(t.fresh_ap_mean.iloc[0], t.fresh_ap_std.iloc[0])
                rows.append(row)
            lines += [_table(pd.DataFrame(rows)), ""]
        lines += [f"{h} Against the quality bars", ""] + [f"* {v}" for v in verdicts(attack, BARS)] + [""]
    return lines


def write_results(results=None, out=None) -> Path:
    """RESULTS.md (by default the repository's) generated from the CSVs under `results`."""
    out = Path(out) if out is not None else config.REPO / "RESULTS.md"
    out.write_text(results_markdown(results))
    return out


def main(argv=None) -> int:
    import argparse
    import sys
    parser = argparse.ArgumentParser(description="Write RESULTS.md from results/summary.csv and attack_summary.csv.")
    parser.add_argument("--results", default=None, help="the results folder (default: the project's)")
    parser.add_argument("--out", default=str(config.REPO / "RESULTS.md"))
    args = parser.parse_args(argv)
    print("written", write_results(args.results, args.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
