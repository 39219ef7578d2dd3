"""The batch runner's bookkeeping (the notebooks themselves run under nbval)."""
import json

import pandas as pd
import pytest

from helpers import batch


def write_metrics(folder, **m):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(m))


def test_summary_collects_every_run(tmp_path):
    write_metrics(tmp_path / "none", variant="none", dataset="squares", profile="cpu", seed=0, best_epoch=9,
                  train_minutes=3.0, test={"detector_ap": 0.98, "ranked_ap": 0.97, "reid_auc": 0.96})
    write_metrics(tmp_path / "S2", variant="S2", dataset="squares", profile="cpu", seed=0, best_epoch=30,
                  train_minutes=5.0, baseline_ap=0.98,
                  test={"detector_ap": 0.9, "ranked_ap": 0.88, "reid_auc": 0.55, "distance": 0.0943})
    path, md = batch.write_summary(tmp_path)
    df = pd.read_csv(path)
    assert list(df.columns) == batch.SUMMARY_COLUMNS
    assert list(df.variant) == ["none", "S2"]
    assert df.loc[df.variant == "none", "baseline_ap"].item() == 0.98
    assert df.loc[df.variant == "S2", "distance"].item() == pytest.approx(0.0943)
    assert "| S2 " in md and (tmp_path / "summary.md").exists()


def test_unknown_variant_fails_before_any_work(capsys):
    with pytest.raises(KeyError, match="S9"):
        batch.main(["S9", "--profile", "smoke"])


def test_publishing_shrinks_large_figures_only():
    import base64
    import io

    import numpy as np
    from PIL import Image

    def png(array):
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="PNG")
        return base64.b64encode(out.getvalue()).decode()

    rng = np.random.default_rng(0)
    photo = png(rng.integers(0, 256, (600, 1600, 3), dtype=np.uint8))
    small = png(np.zeros((50, 80, 3), np.uint8))
    shrunk = batch.shrink_png(photo)
    assert len(shrunk) < len(photo)
    assert Image.open(io.BytesIO(base64.b64decode(shrunk))).size == (800, 300)
    assert batch.shrink_png(small) == small


def test_seeds_run_per_variant_keep_finished_runs_and_reach_the_attack(tmp_path, monkeypatch):
    from helpers import config
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    calls = []
    monkeypatch.setattr(batch, "prepare_dataset", lambda *a, **k: None)
    monkeypatch.setattr(batch, "run_notebook", lambda name, out, params, progress=True: calls.append((name, out, params)))
    write_metrics(config.run_dir("S1", 1), variant="S1", profile="smoke", seed=1, data_seed=0)
    write_metrics(config.run_dir("S2", 0), variant="S2", profile="cpu", seed=0)  # another profile: trained again
    assert batch.main(["S1", "S2", "--seeds", "0", "1", "--profile", "smoke", "--quiet"]) == 0
    trained = [(p["VARIANT"], p["SEED"], out.parent.name) for n, out, p in calls if n == "04_adversarial_training"]
    assert trained == [("S1", 0, "S1"), ("S2", 0, "S2"), ("S2", 1, "S2_seed1")]
    attack = [p for n, _, p in calls if n == "06_attack_the_filter"]
    assert attack == [{"PROFILE": "smoke", "DATA_SEED": 0, "SEEDS": [0, 1], "VARIANTS": ["S1", "S2"],
                       "DATASETS": ["squares"]}]
    assert [n for n, _, _ in calls][-3:] == ["05_evaluation", "06_attack_the_filter", "07_anonymise_and_export"]
    calls.clear()
    assert batch.main(["S1", "--seeds", "1", "--profile", "smoke", "--quiet", "--retrain", "--no-attack",
                       "--no-evaluation"]) == 0
    assert [n for n, _, _ in calls] == ["04_adversarial_training"]
