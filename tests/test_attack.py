"""Fresh attackers, baselines and the seed tables of notebook 06."""
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from helpers import attack, config, plots, squares


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((4, 32, 48, 3), dtype=np.float32)


@pytest.mark.parametrize("name", sorted(config.BASELINES))
def test_baselines_keep_shape_and_range(name, images):
    out = attack.baseline(name, seed=0)(images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert attack.baseline(name).strength  # documented, shown in notebook 06


def test_baselines_do_what_their_names_say(images):
    grey = attack.baseline("grey")(images)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
    assert np.allclose(grey[..., 0], images @ np.array(attack.LUMA, np.float32), atol=1e-6)
    assert np.array_equal(attack.baseline("none")(images), images)
    blur = attack.baseline("blur")(images)
    assert blur.std() < images.std() and np.allclose(blur.mean(), images.mean(), atol=0.02)
    solid = np.full((2, 32, 48, 3), 0.3, np.float32)
    for name in ("blur", "pixelate", "grey"):  # a solid colour survives blur and pixelation unchanged
        assert np.allclose(attack.baseline(name)(solid), 0.3, atol=1e-5), name
    pix = attack.baseline("pixelate")(images)  # 16 cells across 48 px: 3 x 3 blocks of one colour
    assert np.allclose(pix[:, :3, :3], images[:, :3, :3].mean(axis=(1, 2), keepdims=True), atol=1e-5)
    noise = attack.baseline("noise", seed=1)
    a, b = noise(solid), noise(solid)
    assert not np.allclose(a, b) and abs(a.std() - config.BASELINES["noise"]["std"]) < 0.02


def test_unknown_baseline_names_the_choices():
    with pytest.raises(KeyError, match="pixelate"):
        attack.baseline("mosaic")


def test_attackers_have_shared_or_separate_towers():
    both = attack.build_attacker("cnn", (32, 32, 3), 0.25, shared=True)
    one = attack.build_attacker("cnn", (32, 32, 3), 0.25, shared=False)
    assert len(one.trainable_weights) == 2 * len(both.trainable_weights) - 2  # the Dense head is single
    with pytest.raises(KeyError, match="mobilenet"):
        attack.build_attacker("vit", (32, 32, 3), 0.25)


@pytest.fixture(scope="module")
def cnn_attack(smoke_profile):
    """The plain-CNN attackers on smoke squares, traced once for the leak tests below."""
    sets = {s: squares.fixed_sets(smoke_profile, s, 0) for s in ("val", "test")}
    settings = dict(reid_steps=40, detector_steps=2, eval_every=10)
    return attack.Attack(smoke_profile, sets, squares.TrainingStream(smoke_profile, 1000), settings,
                         attackers=("cnn",), sides=("both",))


def test_identity_leaks_and_constant_hides(cnn_attack):
    leak = cnn_attack.run(attack.baseline("none"), seed=0)["reid"]["cnn/both"]
    hidden = cnn_attack.run(attack.constant(), seed=0)["reid"]["cnn/both"]
    assert leak["test_auc"] > 0.85, leak  # on squares the colour is the identity
    assert hidden["test_auc"] == pytest.approx(0.5, abs=0.02), hidden
    assert 1 <= leak["best_step"] <= 40 and len(leak["history"]) == 4


def test_attackers_restart_from_the_same_weights(cnn_attack):
    t = cnn_attack.reid[("cnn", "both")]
    t.reset(3)
    w1 = [w.copy() for w in t.model.get_weights()]
    t.step([np.zeros((4, 32, 32, 3), np.float32), np.ones((4, 32, 32, 3), np.float32)], np.ones(4, np.float32))
    t.reset(3)
    assert all(np.array_equal(a, b) for a, b in zip(w1, t.model.get_weights()))
    assert all(float(tf.reduce_max(tf.abs(v))) == 0 for v in t.opt.variables if not v.path.endswith("learning_rate"))


def test_results_are_cached_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": np.float32(0.25)}

    path = tmp_path / "a" / "none_seed0.json"
    assert attack.cached(path, {"k": 1}, compute) == {"value": 0.25}
    assert attack.cached(path, {"k": 1}, compute) == {"value": 0.25} and len(calls) == 1
    attack.cached(path, {"k": 2}, compute)
    assert len(calls) == 2 and json.loads(path.read_text())["key"] == {"k": 2}


def fake_result(transform, seed, auc, ap, kind="filter"):
    reid = {f"{k}/{s}": {"test_auc": auc + 0.01 * i, "val_auc": auc, "best_step": 5}
            for i, (k, s) in enumerate([(k, s) for k in attack.ATTACKERS for s in attack.SIDES])}
    return {"transform": transform, "kind": kind, "seed": seed, "reid": reid,
            "detector": {"test_ap": ap, "test_ranked_ap": ap}}


def test_seed_aggregation():
    rows = []
    for seed, (auc, ap) in enumerate([(0.5, 0.9), (0.6, 0.8), (0.7, 1.0)]):
        rows += attack.rows(fake_result("S2", seed, auc, ap), "squares", "cpu",
                            {"reid_auc": auc - 0.1, "detector_ap": ap})
    rows += attack.rows(fake_result("grey", 0, 0.9, 0.95, "baseline"), "squares", "cpu")
    df = pd.DataFrame(rows, columns=attack.SUMMARY_COLUMNS)
    assert {"dataset", "transform", "attacker", "seed", "fresh_auc", "fresh_ap"} <= set(df.columns)
    assert len(df) == 4 * 4
    agg = attack.aggregate(df)
    s2 = agg[(agg["transform"] == "S2") & (agg.attacker == "mobilenet") & (agg.sides == "both")].iloc[0]
    assert s2.fresh_auc_mean == pytest.approx(0.6) and s2.fresh_auc_std == pytest.approx(0.1)
    assert s2.fresh_ap_mean == pytest.approx(0.9) and s2.fresh_ap_std == pytest.approx(0.1)
    assert s2.co_trained_auc_mean == pytest.approx(0.5) and s2.seeds == 3
    grey = agg[(agg["transform"] == "grey") & (agg.attacker == "cnn") & (agg.sides == "one")].iloc[0]
    assert grey.seeds == 1 and grey.fresh_auc_std == 0 and np.isnan(grey.co_trained_auc_mean)
    assert attack.mean_std(0.6, 0.1) == "0.600 ± 0.100" and attack.mean_std(float("nan"), 0) == "–"


def test_pareto_front():
    points = {"none": {"auc": 0.95, "ap": 1.0}, "grey": {"auc": 0.9, "ap": 0.9}, "S1": {"auc": 0.55, "ap": 0.95},
              "flipped": {"auc": 0.3, "ap": 0.95}}
    assert set(plots.pareto_front(points)) == {"none", "S1"}
