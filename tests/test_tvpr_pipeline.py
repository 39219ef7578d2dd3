"""The TVPR path end to end in the smoke profile: stand-in -> 02 -> 03 (TVPR) -> 04 (R1) -> 05."""
import json

import pandas as pd

from helpers import batch, config


def test_batch_runs_r1_on_the_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    assert batch.main(["R1", "--profile", "smoke", "--no-evaluation", "--no-attack"]) == 0
    results = config.results_dir()
    manifest = json.loads((config.data_dir() / "tvpr" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["people"] == 3 and manifest["parameters"]["stills"] == 6
    none = json.loads((results / "none_tvpr" / "metrics.json").read_text())
    r1 = json.loads((results / "R1" / "metrics.json").read_text())
    assert (none["dataset"], r1["dataset"], r1["warm_start"]) == ("tvpr", "tvpr", "both")
    assert r1["unfiltered_ap"] == none["test"]["detector_ap"] and r1["train_seed"] == r1["data_seed"] == 0
    assert 0 <= r1["test"]["reid_auc"] <= 1 and r1["test"]["distance"] >= 0
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary.variant) == {"none", "R1"} and set(summary.dataset) == {"tvpr"}
    # notebook 05 reports TVPR alone when squares were never run
    batch.run_notebook("05_evaluation", results / "notebooks" / "05.ipynb",
                       {"PROFILE": "smoke", "VARIANTS": ["R1"], "TRAIN_SEEDS": [0]})
    assert (results / "05_evaluation" / "figure_5_2.png").exists()
    assert (results / "05_evaluation" / "appendix_a_tvpr.png").exists()
    assert "R1" in pd.read_csv(results / "05_evaluation" / "table_5_2.csv").variant.tolist()
