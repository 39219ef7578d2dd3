"""The batch runner's bookkeeping, the summary tables and publishing (the notebooks run under nbval)."""

import pandas as pd
import pytest

from helpers import batch, config, publish, report, runs


def write_run(folder, files=("filter.keras",), **m):
    folder.mkdir(parents=True)
    for f in files:
        (folder / f).write_text("w")
    runs.write_json(folder / "metrics.json", m)


def test_summary_collects_every_run_and_marks_a_distance_that_cannot_rank(tmp_path):
    write_run(tmp_path / "none", ("detector.keras", "reid.keras"), variant="none", dataset="squares", profile="cpu",
              train_seed=0, data_seed=0, best_epoch=9, train_minutes=3.0,
              val={"detector_ap": 0.97}, test={"detector_ap": 0.98, "ranked_ap": 0.97, "reid_auc": 0.96})
    write_run(tmp_path / "S2", variant="S2", dataset="squares", profile="cpu", train_seed=0, data_seed=0,
              best_epoch=30, train_minutes=5.0, unfiltered_ap=0.98, val={"distance": 0.1, "fresh_val_auc": 0.9},
              test={"detector_ap": 0.9, "ranked_ap": 0.88, "reid_auc": 0.55, "distance": 0.0943})
    write_run(tmp_path / "none_tvpr", ("detector.keras", "reid.keras"), variant="none", dataset="tvpr",
              profile="cpu", train_seed=0, data_seed=0, val={"detector_ap": 0.1}, test={"detector_ap": 0.1})
    path, md = report.write_summary(tmp_path, {"04 S2": 5.0, "05 evaluation": 0.5}, "Run: test\n\n")
    df = pd.read_csv(path)
    assert list(df.columns) == report.SUMMARY_COLUMNS
    assert list(zip(df.dataset, df.variant)) == [("squares", "none"), ("squares", "S2"), ("tvpr", "none")]
    assert df.loc[df.variant == "S2", "distance"].item() == pytest.approx(0.0943)
    assert df.loc[df.dataset == "tvpr", "distance_ranks"].item() == False  # noqa: E712 (AP 0.1 < floor)
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("Run: test") and "| S2 " in md and "cannot rank filters" in text
    assert "| total | 5.5 |" in text


def test_unknown_variant_fails_before_any_work():
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
    shrunk = publish.shrink_png(photo)
    assert len(shrunk) < len(photo)
    assert Image.open(io.BytesIO(base64.b64decode(shrunk))).size == (800, 300)
    assert publish.shrink_png(small) == small


def test_seeds_run_per_variant_keep_finished_runs_and_reach_the_attack(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    calls = []
    monkeypatch.setattr(batch, "setup_runs", lambda *a, **k: [])
    monkeypatch.setattr(batch, "run_notebook", lambda name, out, params, quiet=True: calls.append((name, out, params)) or 0.5)
    write_run(config.run_dir("S1", 1), variant="S1", dataset="squares", profile="smoke", train_seed=1, data_seed=0)
    write_run(config.run_dir("S2", 0), variant="S2", dataset="squares", profile="cpu", train_seed=0, data_seed=0)
    assert batch.main(["S1", "S2", "--seeds", "0", "1", "--profile", "smoke"]) == 0
    trained = [(p["VARIANT"], p["TRAIN_SEED"], out.parent.name) for n, out, p in calls if n == "04_adversarial_training"]
    assert trained == [("S1", 0, "S1"), ("S2", 0, "S2"), ("S2", 1, "S2_seed1")]  # S2 of another profile: again
    attack = [p for n, _, p in calls if n == "06_attack_the_filter"]
    assert attack == [{"PROFILE": "smoke", "DATA_SEED": 0, "TRAIN_SEEDS": [0, 1], "VARIANTS": ["S1", "S2"],
                       "DATASETS": ["squares"], "OUTPUTS": ["uint8"]}]  # the published output unless asked
    assert [n for n, _, _ in calls][-3:] == ["05_evaluation", "06_attack_the_filter", "07_anonymise_and_export"]
    out = capsys.readouterr().out
    assert "[1/6] 04 S1 ... 0.5 min" in out and "total" in out
    assert "Run: `python -m helpers.batch S1 S2" in (tmp_path / "results" / "summary.md").read_text()
    calls.clear()
    assert batch.main(["S1", "--seeds", "1", "--profile", "smoke", "--retrain", "--no-attack", "--no-evaluation"]) == 0
    assert [n for n, _, _ in calls] == ["04_adversarial_training"]


def test_a_failing_notebook_names_its_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    monkeypatch.setattr(batch, "setup_runs", lambda *a, **k: [])

    def fail(name, out, params, quiet=True):
        raise batch.NotebookFailed(f"{name} failed: see the executed notebook {out} and its log {out.with_suffix('.log')}.")

    monkeypatch.setattr(batch, "run_notebook", fail)
    assert batch.main(["S1", "--profile", "smoke", "--no-attack", "--no-evaluation"]) == 1
    err = capsys.readouterr().err
    assert "04_adversarial_training failed" in err and "04_adversarial_training.log" in err


def test_results_md_and_the_readme_come_from_the_committed_run():
    # RESULTS.md is generated from the committed CSVs: regenerating it must give the same text, and the
    # README names the run (date and commit) that results/summary.md records.
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    committed = root / "results"
    if not (committed / "summary.csv").exists():
        pytest.fail("results/summary.csv of the committed run is missing")
    assert (root / "RESULTS.md").read_text() == report.results_markdown(committed)
    first = (committed / "summary.md").read_text().splitlines()[0]
    commit = first.split("commit ")[1].split(" ")[0].rstrip(",")
    assert commit in (root / "README.md").read_text()
