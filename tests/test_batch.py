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
