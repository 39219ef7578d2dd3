"""The batch runner's bookkeeping, the summary tables and publishing (the notebooks run under nbval)."""

import argparse
import json
import os
import subprocess

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


SMOKE_S1 = dict(variant="S1", dataset="squares", profile="smoke", train_seed=0, data_seed=0)


def occupy_with_other_profile(root):
    write_run(root / "results" / "none", ("detector.keras", "reid.keras"), **{**SMOKE_S1, "variant": "none", "profile": "cpu"})


def occupy_with_other_run(root):
    write_run(root / "results" / "S1", **{**SMOKE_S1, "data_seed": 3})


def occupy_with_old_format(root):
    write_run(root / "results" / "S1", seed=0, distance=0.2)  # no variant, profile or data set


def occupy_with_corrupt_json(root):
    (root / "results" / "S1").mkdir(parents=True)
    (root / "results" / "S1" / "metrics.json").write_text('{"variant": "S1", "prof')


BAD_BATCH_CALLS = {  # name: (arguments, what the tree holds, exit code, words the one message must contain)
    "unknown variant": (["S9"], None, 2, ["S9", "S1"]),
    "unknown profile": (["S1", "--profile", "laptop"], None, 2, ["laptop", "cpu"]),
    "negative seed": (["S1", "--seeds", "-1"], None, 2, ["non-negative"]),
    "negative data seed": (["S1", "--data-seed", "-2"], None, 2, ["non-negative"]),
    "seed not a number": (["S1", "--seeds", "one"], None, 2, ["one"]),
    "unknown output": (["S1", "--attack-outputs", "png"], None, 2, ["png"]),
    "unfiltered networks of another profile": (["S1"], occupy_with_other_profile, 2, ["profile cpu", "ANON_ROOT"]),
    "finished run of another data seed": (["S1"], occupy_with_other_run, 2, ["data seed 3", "S1"]),
    "results of an older format": (["S1"], occupy_with_old_format, 2, ["cannot be read", "older version"]),
    "half a metrics.json": (["S1"], occupy_with_corrupt_json, 2, ["cannot be read"]),
}


@pytest.mark.parametrize("case", list(BAD_BATCH_CALLS))
def test_bad_batch_calls_stop_before_any_work_with_one_message(case, tmp_path, monkeypatch, capsys):
    args, occupy, code, words = BAD_BATCH_CALLS[case]
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    if occupy:
        occupy(tmp_path)
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    monkeypatch.setattr(batch, "run_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    profile = [] if "--profile" in args else ["--profile", "smoke"]
    try:
        got = batch.main(args + profile)
    except SystemExit as stop:  # argparse
        got = stop.code
    assert got == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before  # nothing written or touched


def test_a_damaged_or_outdated_data_file_says_what_to_do(tmp_path, monkeypatch, capsys, smoke_profile):
    from helpers import datasets, squares
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    path = squares.sets_path(config.data_dir(), "smoke", 0)
    path.parent.mkdir(parents=True)
    for content in (b"", b"PK\x03\x04 not a zip", b"\x93NUMPY garbage"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match="delete it and run notebooks/01_synthetic_squares.ipynb"):
            datasets.eval_sets(smoke_profile, 0)
        assert not batch.squares_prepared(argparse.Namespace(profile="smoke", data_seed=0))
        assert "notebook 01 makes it again" in capsys.readouterr().out
    squares.save_sets(path, {"val": squares.fixed_sets(smoke_profile, "val", 0)})  # an older layout: no test split
    with pytest.raises(ValueError, match="not val and test"):
        datasets.eval_sets(smoke_profile, 0)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.eval_sets(smoke_profile, 0)


def test_tvpr_data_of_another_profile_are_refused(tmp_path):
    from helpers import datasets, tvpr
    folder = datasets.tvpr_dir(tmp_path)
    folder.mkdir(parents=True)
    source = {"raw_root": str(tmp_path / "data" / "topview_raw" / "cpu_seed0")}
    (folder / tvpr.MANIFEST_FILE).write_text(json.dumps({"source": source}))
    with pytest.raises(ValueError, match="holds the TVPR stand-in cpu_seed0, not smoke_seed0"):
        datasets.check_tvpr_source("smoke", 0, tmp_path)
    datasets.check_tvpr_source("cpu", 0, tmp_path)  # its own data
    source["raw_root"] = "/home/someone/TVPR"  # the real TVPR serves every profile
    (folder / tvpr.MANIFEST_FILE).write_text(json.dumps({"source": source}))
    datasets.check_tvpr_source("smoke", 0, tmp_path)


def test_the_registry_skips_unreadable_metrics(tmp_path):
    occupy_with_corrupt_json(tmp_path)
    occupy_with_other_profile(tmp_path)
    assert [r.name for r in runs.all_runs(tmp_path / "results")] == ["none"]
    runs.check_free(tmp_path / "results" / "none", "none", "squares", "cpu", 0, 0)  # the same run: free to redo
    runs.check_free(tmp_path / "results" / "S2", "S2", "squares", "cpu", 0, 0)  # nothing there


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
    assert batch.main(["S1", "S2", "--seeds", "0", "1", "--profile", "smoke"]) == 0
    trained = [(p["VARIANT"], p["TRAIN_SEED"], out.parent.name) for n, out, p in calls if n == "04_adversarial_training"]
    assert trained == [("S1", 0, "S1"), ("S2", 0, "S2"), ("S2", 1, "S2_seed1")]
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


BAD_PARAMETERS = [  # notebook, parameters, words of the error: each stops in the notebook's first cells
    ("04_adversarial_training", {"VARIANT": "S9"}, ["Unknown variant 'S9'"]),
    ("04_adversarial_training", {"VARIANT": "S1", "EPOCHS": 0}, ["EPOCHS=0", "positive"]),
    ("03_networks", {"PRETRAIN_STEPS": -5}, ["PRETRAIN_STEPS=-5", "positive"]),
    ("03_networks", {"PRECISION": "float16"}, ["PRECISION='float16'", "mixed_bfloat16"]),
]


def test_bad_notebook_parameters_stop_with_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    for name, parameters, words in BAD_PARAMETERS:
        out = tmp_path / "executed" / f"{name}.ipynb"
        with pytest.raises(batch.NotebookFailed) as failed:
            batch.run_notebook(name, out, {"PROFILE": "smoke", **parameters})
        assert all(w in str(failed.value) for w in words), str(failed.value)
        assert not (tmp_path / "results").exists()  # stopped before writing anything


def test_tasks_wait_for_what_they_read(tmp_path, monkeypatch):
    # The ray engine gets every notebook run with its dependencies; here a stand-in engine records them.
    monkeypatch.setenv("ANON_ROOT", str(tmp_path))
    got = {}

    class Engine:
        @staticmethod
        def run(tasks, plan, address=None, jobs=None):
            got.update({t.label: t for t in tasks})
            got["order"] = [t.label for t in tasks]

    import sys
    monkeypatch.setitem(sys.modules, "helpers.cluster", Engine)
    monkeypatch.setattr("helpers.cluster", Engine, raising=False)
    write_run(config.run_dir("R1", 1), variant="R1", dataset="tvpr", profile="smoke", train_seed=1, data_seed=0)
    assert batch.main(["S1", "R1", "--seeds", "0", "1", "--profile", "smoke", "--engine", "ray", "--jobs", "2"]) == 0
    order = got.pop("order")
    assert all(order.index(a) < order.index(label) for label, t in got.items() for a in t.after)  # a valid order
    assert got["03 squares"].after == ("01 squares",) and got["03 tvpr"].after == ("02 TVPR",)
    assert got["04 S1_seed1"].after == ("01 squares", "03 squares")
    assert "04 R1_seed1" not in got  # finished: kept
    assert got["06 attack R1_seed1"].after == ("06 attack classic tvpr",)
    assert got["06 attack S1"].after == ("06 attack classic squares", "04 S1")
    assert got["06 attack S1"].parameters["VARIANTS"] == ["S1"] and got["06 attack S1"].parameters["CLASSIC"] == ["none"]
    assert set(got["06 attack"].after) >= {label for label in got if label.startswith("06 attack ")}
    assert order[-1] == "07 anonymise" and set(got["07 anonymise"].after) == set(order[:-1])
    assert {t.kind for t in got.values()} == {"setup", "train", "attack", "report"}


def test_engine_options_are_checked():
    for args in (["S1", "--jobs", "2"], ["S1", "--engine", "ray", "--jobs", "0"], ["S1", "--engine", "spark"]):
        with pytest.raises(SystemExit) as stop:
            batch.main(args + ["--profile", "smoke"])
        assert stop.value.code == 2


def test_readme_figures_of_each_study_come_from_its_csvs():
    # Each README bullet naming a study states that study's filter chosen on validation and its strongest
    # fresh attacker's mean test AUC, as computed from the study's attack_summary.csv.
    import re
    from pathlib import Path
    import pandas as pd
    root = Path(__file__).resolve().parent.parent
    # a bullet ends at the next bullet, a blank line or a heading
    bullets = re.split(r"\n(?=- |#)|\n\s*\n", (root / "README.md").read_text())
    cited = 0
    for study in sorted((root / "results" / report.STUDIES).glob("*/attack_summary.csv")):
        name = study.parent.name
        texts = [b for b in bullets if f"`{name}`" in b]
        if not texts:
            continue
        cited += 1
        attack = pd.read_csv(study)
        c = report.chosen_filter(attack, attack[attack.kind == "filter"].dataset.iloc[0])
        best, worst = c["name"], f"{c['worst']:.3f}"
        assert any(re.search(rf"\b{best}\b", b) and worst in b for b in texts), (name, best, worst)
    assert cited >= 2


def test_make_run_is_the_quick_story_and_make_full_the_cpu_one():
    # make and git are what `make test` and a clone need: no skip when they are missing
    def dry(*args):
        return subprocess.run(["make", "-n", *args], cwd=config.REPO, capture_output=True, text=True, check=True).stdout
    assert "-m helpers.batch --profile quick" in dry("run")
    assert "--profile cpu" in dry("run", "PROFILE=cpu")
    assert "--seeds 0 1 2" in dry("full") and "--profile cpu" in dry("full")
    env = {k: v for k, v in os.environ.items() if k != "ANON_ROOT"}  # the suite sets one of its own
    database = subprocess.run(["make", "-pn", "full"], cwd=config.REPO, capture_output=True, text=True, env=env).stdout
    assert f"full: ANON_ROOT := {config.REPO / 'full'}" in database  # never in make run's tree



def test_the_header_counts_code_changes_but_not_the_results_the_batch_rewrote(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "helpers.py").write_text("x = 1\n")
    (tmp_path / "results" / "summary.csv").write_text("a\n")
    git = lambda *a: subprocess.run(  # noqa: E731
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *a], cwd=tmp_path,
        check=True, capture_output=True)
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(batch, "NOTEBOOKS", tmp_path / "notebooks")
    (tmp_path / "results" / "summary.csv").write_text("b\n")  # what a batch writes
    assert "uncommitted" not in batch.header(["S1"])
    (tmp_path / "helpers.py").write_text("x = 2\n")
    assert "uncommitted" in batch.header(["S1"])


def test_readme_names_the_committed_run_and_its_minutes():
    # The README's section on the committed run gives the date, commit and total minutes that
    # results/summary.md recorded when the batch runner wrote it.
    import re
    md = (config.REPO / "results" / "summary.md").read_text()
    when, commit = re.search(r" on (\d{4}-\d\d-\d\d) [\d:]+, commit (\w+)", md.splitlines()[0]).groups()
    total = re.search(r"^\| total \| ([\d.]+) \|", md, re.M).group(1)
    readme = (config.REPO / "README.md").read_text()
    section = readme[readme.index("## The committed run"):]
    section = section[:section.index("\n## ", 1)]
    assert when in section and commit in section and f"{total} min" in section, (when, commit, total)
