"""The three training steps, the loop, and resuming an interrupted run."""
import json

import numpy as np
import pytest
import tensorflow as tf

from helpers import models, squares, training


def fresh_steps(profile, seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    nets = training.Networks(*models.networks_for(profile, "squares", (5, 7, 7, 5, 3)))
    return training.Steps(nets, 5e-4, 1e-3, 5e-4)


def test_privacy_terms():
    same = tf.constant([1.0, 0.0])
    p = tf.constant([[0.9], [0.2]])
    bce = float(training.bce(same, p))
    assert float(training.privacy_loss("thesis", same, p)) == pytest.approx(-bce / 5)
    half = tf.constant([[0.5], [0.5]])
    confusion_at_half = float(training.privacy_loss("confusion", same, half))
    assert confusion_at_half == pytest.approx(np.log(2) / 5, rel=1e-4)
    assert float(training.privacy_loss("confusion", same, p)) > confusion_at_half
    # A ReID that answers the opposite is rewarded by the thesis term, not by the confusion term.
    flipped = tf.constant([[0.01], [0.99]])
    assert float(training.privacy_loss("thesis", same, flipped)) < float(training.privacy_loss("thesis", same, half))
    assert float(training.privacy_loss("confusion", same, flipped)) > confusion_at_half
    with pytest.raises(ValueError, match="confusion"):
        training.privacy_loss("other", same, p)


@pytest.fixture(scope="module")
def trained_steps(smoke_profile):
    """Smoke networks after 60 iterations of Algorithm 1, with the losses of every iteration."""
    steps = fresh_steps(smoke_profile)
    loop = training.Loop(steps, squares.TrainingStream(smoke_profile, 0), dict, "/unused", 1)
    return steps, [loop.iteration(s) for s in range(60)]


def test_a_smoke_run_lowers_the_detector_and_reid_losses(smoke_profile):
    # Without a filter (notebook 03's setting): with one, the filter fights the ReID on purpose.
    import keras
    keras.utils.set_random_seed(0)
    _, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3))
    steps = training.Steps(training.Networks(None, det, reid), 5e-4, 1e-3, None)
    loop = training.Loop(steps, squares.TrainingStream(smoke_profile, 0), dict, "/unused", 1)
    losses = [loop.iteration(s) for s in range(80)]
    for key, ratio in (("detector", 0.5), ("reid", 0.9)):
        first = np.mean([l[key] for l in losses[:10]])
        last = np.mean([l[key] for l in losses[-10:]])
        assert last < ratio * first, f"{key} loss went from {first:.3f} to {last:.3f}"


def test_an_iteration_reports_every_loss(trained_steps):
    _, losses = trained_steps
    assert set(losses[0]) == {"detector", "reid", "filter", "filter_mse", "filter_privacy"}


def test_the_filter_step_updates_only_the_filter(trained_steps, smoke_profile):
    # After some training: untrained MobileNets in inference mode pass back gradients of ~1e-15.
    steps, _ = trained_steps
    det, pairs = squares.TrainingStream(smoke_profile, 0).batch(1000)
    a, b = pairs.images()
    nets = (steps.nets.filter, steps.nets.detector, steps.nets.reid)
    before = [[v.numpy().copy() for v in m.weights] for m in nets]
    steps.filter_step(det.images, det.heatmaps, a, b, pairs.labels)
    after = [[v.numpy() for v in m.weights] for m in nets]
    changed = [any(not np.array_equal(x, y) for x, y in zip(bm, am)) for bm, am in zip(before, after)]
    assert changed == [True, False, False]  # BatchNorm statistics of the frozen networks included


def test_interrupt_and_resume_reaches_the_same_state(tmp_path, smoke_profile):
    def run(out, epochs, seed=0):
        steps = fresh_steps(smoke_profile, seed)
        scores = iter(range(100))
        loop = training.Loop(steps, squares.TrainingStream(smoke_profile, 0),
                             lambda: {"distance": float(next(scores) % 3)}, out, 2, reid_steps=2)
        loop.fit(epochs, progress=False)
        return steps, loop

    whole, whole_loop = run(tmp_path / "whole", 3)
    run(tmp_path / "split", 2)                      # "interrupted" after two epochs
    resumed, resumed_loop = run(tmp_path / "split", 3, seed=5)  # new process, other init: the checkpoint wins
    assert resumed_loop.state.epoch == 3 and len(resumed_loop.state.history) == 3
    for m1, m2 in zip((whole.nets.filter, whole.nets.detector, whole.nets.reid),
                      (resumed.nets.filter, resumed.nets.detector, resumed.nets.reid)):
        for v1, v2 in zip(m1.weights, m2.weights):
            np.testing.assert_allclose(v1.numpy(), v2.numpy(), rtol=1e-4, atol=1e-5)
    assert int(whole.opt_filter.iterations) == int(resumed.opt_filter.iterations) == 6
    assert whole_loop.state.best_epoch == resumed_loop.state.best_epoch
    saved = json.loads((tmp_path / "split" / "checkpoints" / "loop_state.json").read_text())
    assert saved["epoch"] == 3


def test_a_nan_loss_stops_training_with_a_message():
    with pytest.raises(FloatingPointError, match="detector loss became nan at step 7"):
        training.check_finite("detector loss", float("nan"), "step 7")
