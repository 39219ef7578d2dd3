"""The three training steps, the fused iteration, ReID pools and restarts, and rounding. Runs of the loop
(resuming, NaN, two devices) are in tests/test_training_runs.py."""
import numpy as np
import pytest
import tensorflow as tf

from helpers import images, losses, models, squares, training


def fresh_steps(profile, seed=0, reids="mobilenet", **kwargs):
    training.reseed(seed)
    nets = training.Networks(*models.networks_for(profile, "squares", (5, 7, 7, 5, 3), reids=reids))
    return training.Steps(nets, 5e-4, 1e-3, 5e-4, **kwargs)


def batch_of(profile, step=1000):
    det, pairs = squares.TrainingStream(profile, 0).batch(step)
    a, b = pairs.images()
    return det.images, det.heatmaps, a, b, pairs.labels


def test_privacy_terms():
    same = tf.constant([1.0, 0.0])
    p = tf.constant([[0.9], [0.2]])
    bce = float(losses.bce(same, p))
    assert bce == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-5)
    assert float(losses.privacy_loss("thesis", same, p, 5)) == pytest.approx(-bce / 5)
    half = tf.constant([[0.5], [0.5]])
    for kind, at_half in (("confusion", np.log(2) / 5), ("entropy", -np.log(2) / 5)):
        assert float(losses.privacy_loss(kind, same, half, 5)) == pytest.approx(at_half, rel=1e-4)
        assert float(losses.privacy_loss(kind, same, p, 5)) > at_half
    # A ReID that answers the opposite is rewarded by the thesis term, not by confusion or entropy.
    flipped = tf.constant([[0.01], [0.99]])
    assert float(losses.privacy_loss("thesis", same, flipped, 5)) < float(losses.privacy_loss("thesis", same, half, 5))
    for kind in ("confusion", "entropy"):
        assert float(losses.privacy_loss(kind, same, flipped, 5)) > float(losses.privacy_loss(kind, same, half, 5))
    with pytest.raises(ValueError, match="confusion"):
        losses.privacy_loss("other", same, p, 5)


@pytest.fixture(scope="module")
def trained_steps(smoke_profile):
    """Smoke networks after 60 iterations of Algorithm 1, with the losses of every iteration."""
    steps = fresh_steps(smoke_profile)
    loop = training.Loop(steps, squares.TrainingStream(smoke_profile, 0), dict, "/unused", 1)
    return steps, [{k: float(v) for k, v in loop.iteration(s).items()} for s in range(60)]


def test_a_smoke_run_lowers_the_detector_and_reid_losses(smoke_profile):
    # Without a filter (notebook 03's setting): with one, the filter fights the ReID on purpose.
    training.reseed(0)
    _, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3))
    steps = training.Steps(training.Networks(None, det, reid), 5e-4, 1e-3, None)
    loop = training.Loop(steps, squares.TrainingStream(smoke_profile, 0), dict, "/unused", 1)
    history = [{k: float(v) for k, v in loop.iteration(s).items()} for s in range(80)]
    assert set(history[0]) == {"detector", "reid"}
    for key, ratio in (("detector", 0.5), ("reid", 0.9)):
        first = np.mean([h[key] for h in history[:10]])
        last = np.mean([h[key] for h in history[-10:]])
        assert last < ratio * first, f"{key} loss went from {first:.3f} to {last:.3f}"


def test_an_iteration_reports_every_loss(trained_steps):
    _, history = trained_steps
    assert set(history[0]) == {"detector", "reid", "filter", "filter_mse", "filter_privacy"}


def test_the_filter_step_updates_only_the_filter(trained_steps, smoke_profile):
    # After some training: untrained MobileNets in inference mode pass back gradients of ~1e-15.
    steps, _ = trained_steps
    nets = (steps.nets.filter, steps.nets.detector, steps.nets.reid)
    before = [[v.numpy().copy() for v in m.weights] for m in nets]
    steps.filter_step(*batch_of(smoke_profile))
    after = [[v.numpy() for v in m.weights] for m in nets]
    changed = [any(not np.array_equal(x, y) for x, y in zip(bm, am)) for bm, am in zip(before, after)]
    assert changed == [True, False, False]  # BatchNorm statistics of the frozen networks included


@pytest.mark.parametrize("privacy", ["thesis", "confusion", "entropy"])
def test_a_filter_step_works_against_the_frozen_reid(privacy, smoke_profile):
    # The sign test: with only the privacy term acting (the detector's targets are its own output), one
    # small filter step must raise the frozen ReID's BCE (Eq. 4) or bring its answers closer to 0.5, as the
    # term measures closeness (BCE against 0.5, or minus the entropy): the mean |p - 0.5| can grow while
    # the term falls, and did on an AVX-512 CPU by 1e-5. Plain gradient descent with a small rate keeps
    # the step where the loss is locally linear.
    import keras
    training.reseed(3)
    filt, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="cnn")
    steps = training.Steps(training.Networks(filt, det, reid), 1e-3, 1e-2, 1e-3, privacy=privacy, lam=1.0)
    steps.opt_filter = keras.optimizers.SGD(1e-4)
    images, heat, a, b, same = batch_of(smoke_profile)
    for _ in range(30):  # a ReID that has learned something to be fought
        steps.reid_step(a, b, same)

    def reid_view():
        p = reid([filt(a, training=False), filt(b, training=False)], training=False).numpy().ravel()
        return float(losses.bce(same, p)), float(losses.privacy_loss(privacy, same, p, 1.0))

    zero_heat = np.asarray(det(filt(images), training=False))  # utility term 0 at the start: privacy alone acts
    bce0, dist0 = reid_view()
    steps.filter_step(images, zero_heat, a, b, same)
    bce1, dist1 = reid_view()
    if privacy == "thesis":
        assert bce1 > bce0, (bce0, bce1)
    else:
        assert dist1 < dist0, (dist0, dist1)


@pytest.mark.parametrize("of,scale", [("images", "absolute"), ("colours", "absolute"), ("images", "contrast"),
                                      ("colours", "contrast")])
def test_the_invariance_term_pulls_the_filtered_pairs_together(smoke_profile, of, scale):
    # The sign test of the attacker-free term: with the ReID term switched off (lambda huge) and the
    # utility term 0, one small filter step brings the filtered images of each pair closer, as the term
    # measures them (per unit of the detector images' contrast for scale="contrast").
    import keras
    training.reseed(3)
    filt, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="cnn")
    steps = training.Steps(training.Networks(filt, det, reid), 1e-3, 1e-2, 1e-3, privacy="confusion", lam=1e12,
                           invariance=1.0, invariance_of=of, invariance_scale=scale)
    steps.opt_filter = keras.optimizers.SGD(1e-2 if scale == "absolute" else 1e-5)
    images, _, a, b, same = batch_of(smoke_profile)
    zero_heat = np.asarray(det(filt(images), training=False))

    def gap():
        view = lambda x: filt(x, training=False)  # noqa: E731
        return float(losses.invariance_term(of, view(a), view(b), scale, reference=view(images)))
    before = gap()
    _, _, privacy = steps.filter_step(images, zero_heat, a, b, same)
    assert float(privacy) == pytest.approx(before, rel=1e-3)  # the term is in the reported privacy figure
    assert gap() < before


def test_the_contrast_floor_raises_the_contrast_of_a_flat_output(smoke_profile):
    # A freshly drawn bias-free filter outputs an almost grey image; one filter step with only the floor's
    # term (no adversary, utility 0) gives it more contrast; above the floor the term is 0.
    import keras
    training.reseed(3)
    filt, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="cnn")
    steps = training.Steps(training.Networks(filt, det, reid), 1e-3, 1e-2, 1e-3, privacy="confusion", lam=1e12,
                           min_contrast=0.2)
    steps.opt_filter = keras.optimizers.SGD(1e-1)
    images, _, a, b, same = batch_of(smoke_profile)
    zero_heat = np.asarray(det(filt(images), training=False))
    seen = lambda: float(losses.contrast(filt(images, training=False)))  # noqa: E731
    before = seen()
    assert before < 0.2 and float(losses.contrast_floor_loss(filt(images, training=False), 0.2)) > 0
    steps.filter_step(images, zero_heat, a, b, same)
    assert seen() > before
    assert float(losses.contrast_floor_loss(images, 1e-3)) == 0.0  # the photos themselves are far above it


def test_invariance_settings_are_checked(smoke_profile):
    filt, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="cnn")
    nets = training.Networks(filt, det, reid)
    with pytest.raises(ValueError, match="invariance"):
        training.Steps(nets, 1e-3, 1e-2, 1e-3, invariance=-1)
    with pytest.raises(ValueError, match="invariance_of"):
        training.Steps(nets, 1e-3, 1e-2, 1e-3, invariance=1, invariance_of="edges")
    with pytest.raises(ValueError, match="invariance_scale"):
        training.Steps(nets, 1e-3, 1e-2, 1e-3, invariance=1, invariance_scale="relative")
    with pytest.raises(ValueError, match="min_contrast"):
        training.Steps(nets, 1e-3, 1e-2, 1e-3, min_contrast=0.7)


def test_the_filter_fights_the_strongest_reid_of_a_pool(smoke_profile):
    steps = fresh_steps(smoke_profile, reids=("cnn", "cnn"), privacy="confusion", lam=1.0)
    strong, weak = steps.nets.reids
    images, heat, a, b, same = batch_of(smoke_profile)
    for _ in range(20):  # only the first member learns: it is the confident (strong) one
        with tf.GradientTape() as tape:
            loss = losses.bce(same, strong([steps.filtered(a), steps.filtered(b)], training=True))
        steps.opt_reids[0].apply_gradients(zip(tape.gradient(loss, strong.trainable_variables), strong.trainable_variables))
    with tf.GradientTape() as tape:
        fa, fb = steps.nets.filter(a), steps.nets.filter(b)
        terms = [losses.privacy_loss("confusion", same, r([fa, fb], training=False), 1.0) for r in (strong, weak)]
    grads_strong = tape.gradient(terms[0], steps.nets.filter.trainable_variables)
    assert float(terms[0]) > float(terms[1])
    # The max passes the gradient of the strongest member only.
    with tf.GradientTape() as tape:
        fa, fb = steps.nets.filter(a), steps.nets.filter(b)
        top = tf.reduce_max(tf.stack([losses.privacy_loss("confusion", same, r([fa, fb], training=False), 1.0)
                                      for r in (strong, weak)]))
    for g1, g2 in zip(tape.gradient(top, steps.nets.filter.trainable_variables), grads_strong):
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-5, atol=1e-9)
    loss, utility, privacy, strongest = steps._filter_update(images, heat, a, b, same)  # then one real step
    assert int(strongest) == 0 and float(privacy) == pytest.approx(float(terms[0]), rel=1e-5)


def state_of(steps):
    """Every weight and optimiser variable of `steps`, as arrays (a process's whole training state)."""
    variables = [v for m in (steps.nets.filter, steps.nets.detector, *steps.nets.reids) for v in m.weights]
    variables += [v for o in (steps.opt_filter, steps.opt_detector, *steps.opt_reids) for v in o.variables]
    return variables, [v.numpy() for v in variables]


def test_one_traced_iteration_equals_the_three_separate_steps(trained_steps, smoke_profile):
    # Same start, same batch, float32: the fused call and the three named steps agree. One set of networks
    # (the fixture's, whose iteration is already traced) runs both paths from the same saved state.
    steps, _ = trained_steps
    batch = batch_of(smoke_profile, 7)
    variables, start = state_of(steps)
    out = {k: float(v) for k, v in steps.iteration(*batch, reid_steps=2, filter_steps=1).items()}
    _, after_fused = state_of(steps)
    for v, value in zip(variables, start):
        v.assign(value)
    d = float(steps.detector_step(batch[0], batch[1]))
    for _ in range(2):
        r = float(steps.reid_step(*batch[2:]))
    f, u, p = (float(x) for x in steps.filter_step(*batch))
    np.testing.assert_allclose([out["detector"], out["reid"], out["filter"], out["filter_mse"], out["filter_privacy"]],
                               [d, r, f, u, p], rtol=1e-4, atol=1e-6)
    _, after_separate = state_of(steps)
    assert len(after_fused) == len(after_separate) > 100
    for v1, v2 in zip(after_fused, after_separate):
        np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rounding, filter_steps", [("all", 2), ("detector", 1)])
def test_the_shared_filter_pass_equals_the_separate_steps_with_rounding(smoke_profile, rounding, filter_steps):
    # The iteration filters the batch once for the adversaries and the first filter step; with 8-bit
    # rounding (straight-through for the filter) and a second filter step it still equals the named steps.
    # Untraced (training.eagerly): at smoke size a step runs faster than it traces.
    steps = fresh_steps(smoke_profile, rounding=rounding)
    assert steps.shared_forward
    batch = batch_of(smoke_profile, 3)
    with training.eagerly():
        steps.iteration(*batch_of(smoke_profile, 2))  # the optimisers create their state on a first update
        variables, start = state_of(steps)
        out = {k: float(v) for k, v in steps.iteration(*batch, reid_steps=1, filter_steps=filter_steps).items()}
        _, after_fused = state_of(steps)
        for v, value in zip(variables, start):
            v.assign(value)
        d, r = float(steps.detector_step(*batch[:2])), float(steps.reid_step(*batch[2:]))
        for _ in range(filter_steps):
            f, u, p = (float(x) for x in steps.filter_step(*batch))
    np.testing.assert_allclose([out["detector"], out["reid"], out["filter"], out["filter_mse"], out["filter_privacy"]],
                               [d, r, f, u, p], rtol=1e-4, atol=1e-6)
    for v1, v2 in zip(after_fused, state_of(steps)[1]):
        np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-5)


def test_a_filter_that_behaves_differently_in_training_is_run_twice(smoke_profile):
    # A filter with BatchNorm gives other images in training and inference mode: the adversaries then
    # learn on an inference-mode pass of their own, as the named steps do.
    training.reseed(0)
    _, det, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3))
    image = tf.keras.Input((None, None, 3))
    normalised = tf.keras.layers.BatchNormalization()(tf.keras.layers.Conv2D(3, 3, padding="same")(image))
    filt = tf.keras.Model(image, normalised)
    assert not training.Steps(training.Networks(filt, det, reid), 5e-4, 1e-3, 5e-4).shared_forward
    assert fresh_steps(smoke_profile).shared_forward

def test_a_restart_reinitialises_weights_and_optimiser(smoke_profile):
    steps = fresh_steps(smoke_profile, reids=("cnn", "cnn"))
    batch = batch_of(smoke_profile)
    steps.reid_step(*batch[2:])  # the ReIDs' own step: tracing a whole iteration would cost ten times as much
    before = [r.get_weights() for r in steps.nets.reids]
    filt_before = steps.nets.filter.get_weights()
    steps.restart_reids(seed=11)
    for r, w in zip(steps.nets.reids, before):
        kernels = [(a, b) for a, b in zip(w, r.get_weights()) if a.ndim == 4]
        assert kernels and all(not np.allclose(a, b) for a, b in kernels)
    for opt in steps.opt_reids:
        assert all(float(tf.reduce_max(tf.abs(v))) == 0 for v in opt.variables if not v.path.endswith("learning_rate"))
    assert all(np.array_equal(a, b) for a, b in zip(filt_before, steps.nets.filter.get_weights()))
    restarted = [r.get_weights() for r in steps.nets.reids]
    steps.reid_step(*batch[2:])
    steps.restart_reids(seed=11)  # the same seed draws the same new start
    for r, w in zip(steps.nets.reids, restarted):
        assert all(np.array_equal(a, b) for a, b in zip(w, r.get_weights()))


def test_reseed_draws_the_weights_of_set_random_seed_and_leaves_tensorflows_seed_alone():
    # training.reseed replaces keras.utils.set_random_seed between traced calls: TensorFlow's global seed,
    # which the latter also sets, clears the kernel caches of every traced step.
    import keras
    build = lambda: models.build_detector((32, 32, 3), 0.25, None, 0.9).get_weights()  # noqa: E731
    keras.utils.set_random_seed(5)
    expected = build()
    tf.random.set_seed(123)
    training.reseed(5)
    assert all(np.array_equal(a, b) for a, b in zip(expected, build()))
    assert tf.compat.v1.get_seed(None)[0] == 123
    training.reseed(6)
    assert not all(np.array_equal(a, b) for a, b in zip(expected, build()))


def test_rounding_matches_the_command_and_passes_gradients():
    x = tf.constant(np.random.default_rng(0).random((2, 5, 5, 3), np.float32))
    np.testing.assert_array_equal(np.asarray(images.quantize(x)) * 255, images.to_uint8(x.numpy()).astype(np.float32))
    assert images.to_uint8(np.array([0.5 / 255, 1.5 / 255, 2.5 / 255], np.float32)).tolist() == [0, 2, 2]  # half to even
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(3.0 * images.quantize_straight_through(x))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 3.0)
    np.testing.assert_allclose(images.quantize_straight_through(x).numpy(), images.quantize(x).numpy())


def test_with_rounding_the_adversaries_learn_on_8_bit_images(smoke_profile):
    steps = fresh_steps(smoke_profile, rounding="adversaries")
    x = batch_of(smoke_profile)[0]
    y = steps.filtered(x).numpy()
    np.testing.assert_allclose(y * 255, np.round(y * 255), atol=1e-4)
    with pytest.raises(ValueError, match="adversaries"):
        fresh_steps(smoke_profile, rounding="sometimes")
