"""Fresh attackers and the fresh detector of notebook 06, and the selection attacker of notebook 04."""
import numpy as np
import pytest
import tensorflow as tf

from helpers import attackers, config, datasets, squares, transforms


def test_attackers_have_shared_or_separate_towers():
    both = attackers.build_attacker("cnn", (32, 32, 3), 0.25, shared=True)
    one = attackers.build_attacker("cnn", (32, 32, 3), 0.25, shared=False)
    assert len(one.trainable_weights) == 2 * len(both.trainable_weights) - 2  # the Dense head is single
    with pytest.raises(KeyError, match="mobilenet"):
        attackers.build_attacker("vit", (32, 32, 3), 0.25)


@pytest.fixture(scope="module")
def cnn_attack(smoke_profile):
    """The plain-CNN attackers on smoke squares, traced once for the tests below."""
    sets = {s: squares.fixed_sets(smoke_profile, s, 0) for s in ("val", "test")}
    # the attacker kinds come from the settings, as config.ATTACK gives them for the quick profile
    settings = dict(reid_steps=40, detector_steps=2, eval_every=10, patience=None, attackers=["cnn"])
    return attackers.Attack(smoke_profile, sets, squares.TrainingStream(smoke_profile, 1000), settings,
                            sides=("both", "one"))


def test_identity_leaks_and_constant_hides(cnn_attack):
    assert sorted(cnn_attack.reid) == [("cnn", "both"), ("cnn", "one")]
    leak = cnn_attack.run(transforms.classic("none"), seed=0)["reid"]["cnn/both"]
    hidden = cnn_attack.run(transforms.constant(), seed=0)["reid"]["cnn/both"]
    assert leak["test_auc"] > 0.85, leak  # on squares the colour is the identity
    assert hidden["test_auc"] == pytest.approx(0.5, abs=0.02), hidden
    assert 1 <= leak["best_step"] <= 40 and len(leak["history"]) == 4 and leak["steps"] == 40


def test_attackers_restart_from_the_same_weights(cnn_attack):
    t = cnn_attack.reid[("cnn", "both")]
    t.reset(3)
    w1 = [w.copy() for w in t.model.get_weights()]
    t.step([np.zeros((4, 32, 32, 3), np.float32), np.ones((4, 32, 32, 3), np.float32)], np.ones(4, np.float32))
    t.reset(3)
    assert all(np.array_equal(a, b) for a, b in zip(w1, t.model.get_weights()))
    assert all(float(tf.reduce_max(tf.abs(v))) == 0 for v in t.opt.variables if not v.path.endswith("learning_rate"))


def test_attackers_trained_together_equal_attackers_trained_one_by_one(cnn_attack, smoke_profile):
    sets = cnn_attack.sets
    t = transforms.classic("grey")
    fixed = {split: {s: attackers.transformed_pairs(sets[split][1], t, s) for s in ("both", "one")}
             for split in ("val", "test")}
    together = attackers.train_reids(cnn_attack.squad, cnn_attack.stream, t, fixed["val"], fixed["test"], 12, 4,
                                     seed=5, patience=1)
    alone = {}
    for key, trainee in cnn_attack.reid.items():
        squad = attackers.ReidSquad({key: trainee})
        alone.update(attackers.train_reids(squad, cnn_attack.stream, t, fixed["val"], fixed["test"], 12, 4,
                                           seed=5, patience=1))
    for key in together:
        assert together[key]["best_step"] == alone[key]["best_step"] and together[key]["steps"] == alone[key]["steps"]
        assert together[key]["test_auc"] == pytest.approx(alone[key]["test_auc"], abs=1e-6)
        np.testing.assert_allclose([h["val_auc"] for h in together[key]["history"]],
                                   [h["val_auc"] for h in alone[key]["history"]], atol=1e-6)


def test_patience_stops_a_network_that_no_longer_improves(cnn_attack):
    sets = cnn_attack.sets
    t = transforms.constant()  # nothing to learn: validation AUC stays 0.5 and never improves
    fixed = {s: attackers.transformed_pairs(sets["val"][1], t, s) for s in ("both", "one")}
    out = attackers.train_reids(cnn_attack.squad, cnn_attack.stream, t, fixed, None, 40, 2, seed=0, patience=2)
    both = out["cnn/both"]  # (with image b original, noise in b can still nudge the AUC)
    assert (both["steps"], both["best_step"], both["val_auc"]) == (6, 2, 0.5) and "test_auc" not in both, both
    assert all(r["steps"] < 40 or r["best_step"] > 30 for r in out.values())


def test_the_selection_attacker_scores_validation_pairs_only(smoke_profile, monkeypatch):
    val = squares.fixed_sets(smoke_profile, "val", 0)[1]
    selector = attackers.SelectionAttack(smoke_profile, squares.TrainingStream(smoke_profile, 7), val, 4, 2)
    seen = []
    real = attackers.transformed_pairs
    monkeypatch.setattr(attackers, "transformed_pairs", lambda pairs, *a, **k: seen.append(pairs) or real(pairs, *a, **k))
    out = selector(transforms.classic("none").published("uint8"))
    assert set(out) == {"fresh_val_auc", "fresh_best_step"} and 0.0 <= out["fresh_val_auc"] <= 1.0
    assert seen == [val]  # the only fixed pairs it ever scores


def test_the_exact_attacker_bounds_a_trained_one_and_reads_what_is_published(cnn_attack, smoke_profile):
    halves = transforms.Transform("halves", "classic", lambda x: tf.cast(x[..., :1] > 0.5, tf.float32) * tf.ones_like(x))
    trained = cnn_attack.run(halves, seed=0)["reid"]["cnn/both"]["test_auc"]
    test_pairs = cnn_attack.sets["test"][1]
    bound = attackers.exact_attack_auc(halves, test_pairs)
    assert 0.55 < bound < 0.95 and trained <= bound + 0.01, (trained, bound)  # two outputs only: little to read
    pairs = datasets.exact_pairs(smoke_profile, "val", 0, identities=60)
    assert attackers.exact_attack_auc(transforms.classic("none").published("uint8"), pairs) == 1.0
    assert attackers.exact_attack_auc(transforms.constant(), pairs) == 0.5
    faint = transforms.Transform("faint", "classic", lambda x: 0.5 + x / 1000)  # differs in float, not in 8 bits
    assert attackers.exact_attack_auc(faint, pairs) == 1.0
    assert attackers.exact_attack_auc(faint.published("uint8"), pairs) == 0.5
    assert not np.isin(pairs.colours_a, datasets.exact_pairs(smoke_profile, "test", 0, identities=60).colours_a).any()
    with pytest.raises(TypeError, match="squares"):
        attackers.exact_attack_auc(halves, attackers.PairArrays(*test_pairs.images(), test_pairs.labels))
    with pytest.raises(ValueError, match="squares"):
        datasets.exact_pairs(config.get_profile("smoke", "tvpr"), "val", 0)


def test_an_attack_draws_its_fixed_pairs_in_one_order_in_every_process(cnn_attack, monkeypatch):
    # A noise transform draws from one generator for every pair set it transforms, so the order of the
    # sets decides which noise each gets; a set's order changes with each process's string hashing.
    seen = []

    def record(pairs, transform, sides, *a, **k):
        seen.append(sides)
        if len(seen) == 4:
            raise StopIteration
        return attackers.PairArrays(np.zeros(1), np.zeros(1), np.zeros(1))

    monkeypatch.setattr(attackers, "transformed_pairs", record)
    with pytest.raises(StopIteration):
        cnn_attack.run(transforms.classic("noise", seed=0), seed=0)
    assert seen == ["both", "one", "both", "one"]
