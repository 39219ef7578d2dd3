"""The three networks of thesis 4.1, and the BatchNorm-momentum trap."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import losses, models, optimizers, squares, training


def test_filter_5_7_7_5_3_has_1341_weights_and_keeps_the_size():
    f = models.build_filter((5, 7, 7, 5, 3))
    assert models.count_weights(f) == 1341
    x = np.random.default_rng(0).random((2, 40, 56, 3)).astype("float32")
    y = f(x).numpy()
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert all(not layer.use_bias for layer in f.layers[1:])


def test_filter_kernels_are_checked():
    with pytest.raises(ValueError, match="five layers"):
        models.build_filter((5, 7, 7, 5))
    with pytest.raises(ValueError, match="ending in 3"):
        models.build_filter((5, 7, 7, 5, 4))


def test_filter_maps_every_solid_colour_to_grey_when_first_kernels_sum_negative():
    # No biases and inputs in [0, 1]: first-layer kernels with positive neighbours and a centre that
    # outweighs them answer <= 0 everywhere in a solid colour, zero-padded border included, so the
    # ReLU clears it and every solid image leaves the filter as 0.5 grey (SPEC.md).
    f = models.build_filter((5, 7, 7, 5, 3))
    k = np.abs(f.layers[1].kernel.numpy())
    k[1, 1] = -k.sum(axis=(0, 1)) + k[1, 1] - 0.01
    f.layers[1].kernel.assign(k)
    colours = np.random.default_rng(1).random((6, 3)).astype("float32")
    out = f(squares.solid_images(colours, 32)).numpy()
    assert np.allclose(out, 0.5, atol=1e-6)


def test_detector_heatmap_is_a_quarter_of_the_input(smoke_nets):
    _, det, _ = smoke_nets
    assert det.output_shape[1:] == (8, 8, 1)
    with pytest.raises(ValueError, match="multiple of 32"):
        models.build_detector((40, 40, 3), 0.25)


def test_reid_is_one_probability_per_pair(smoke_nets):
    _, _, reid = smoke_nets
    a = np.random.default_rng(0).random((3, 32, 32, 3)).astype("float32")
    p = reid([a, a[::-1]], training=False).numpy()
    assert p.shape == (3, 1) and ((0 < p) & (p < 1)).all()


def test_weights_must_be_imagenet_none_or_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights"):
        models.build_reid((32, 32, 3), 0.25, weights=str(tmp_path / "missing.h5"))


def test_mobilenet_momentum_is_overridden(smoke_nets):
    _, det, reid = smoke_nets
    import keras
    moms = {l.momentum for m in (det, reid) for l in m._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)}
    assert moms == {0.9}


def _train_and_measure(momentum, steps=80):
    """Inference-mode and training-mode MSE on a new batch after a short training, and the MSE of
    predicting an empty heatmap."""
    from helpers import config
    training.reseed(0)
    det = models.build_detector((32, 32, 3), 0.25, None, momentum)
    opt = optimizers.Adam(5e-4)
    stream = squares.TrainingStream(config.get_profile("smoke", batch_size=30), 0)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = losses.mse(y, det(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, det.trainable_variables), det.trainable_variables))
        return loss

    for s in range(steps):
        b, _ = stream.batch(s)
        step(b.images, b.heatmaps)
    b, _ = stream.batch(10_000)
    inference = float(losses.mse(b.heatmaps, det(b.images, training=False)))
    train_mode = float(losses.mse(b.heatmaps, det(b.images, training=True)))
    return inference, train_mode, float(np.mean(b.heatmaps ** 2))


def test_inference_mode_is_sane_after_a_few_steps_only_with_the_lower_momentum():
    inference, train_mode, empty = _train_and_measure(0.9)
    assert inference < empty, f"inference MSE {inference:.4f} no better than an empty heatmap ({empty:.4f})"
    assert abs(inference - train_mode) < 0.1 * train_mode
    trap, train_mode, empty = _train_and_measure(0.999)
    assert trap > empty and trap > 1.1 * train_mode, "Keras's default momentum should lag: see models.py"


def test_the_reid_backbone_can_be_a_plain_cnn(smoke_profile):
    _, _, reid = models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="cnn")
    x = np.zeros((2, smoke_profile.reid_size, smoke_profile.reid_size, 3), np.float32)
    assert reid([x, x]).shape == (2, 1) and "mobilenet" not in str([l.name for l in reid.layers])
    with pytest.raises(ValueError, match="cnn"):
        models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3), reids="vit")


def _outputs_and_gradients(plain, fast, x):
    """For a Keras layer and its faster twin with the same (non-default) weights: each one's output on x and
    the gradients of sum(sin(output)) by x and by its weights."""
    plain.build(x.shape)
    fast.build(x.shape)
    fast.set_weights([w + 0.1 for w in plain.get_weights()])
    plain.set_weights(fast.get_weights())
    grads = []
    for layer in (plain, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        grads.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    return grads


@pytest.mark.parametrize("shape", [(3, 2, 2, 24), (2, 3, 4, 8), (1, 5, 7, 6)])
def test_block_deconvolution_equals_keras_with_its_gradients(shape):
    # The detector head's faster kernel must be the same function as Keras's Conv2DTranspose, gradients included.
    x = tf.random.stateless_normal(shape, (1, 2))
    grads = _outputs_and_gradients(tf.keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", use_bias=True),
                                   models.BlockConv2DTranspose(5, 4, strides=2, padding="same", use_bias=True), x)
    assert grads[1][0].shape == (shape[0], 2 * shape[1], 2 * shape[2], 5)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_pointwise_convolution_equals_keras_and_other_convolutions_are_untouched():
    x = tf.random.stateless_normal((2, 5, 6, 7), (3, 4))
    for kernel, strides in ((1, 1), (3, 1), (1, 2)):
        plain = tf.keras.layers.Conv2D(4, kernel, strides=strides, padding="same", activation="relu")
        fast = models.PointwiseConv2D(4, kernel, strides=strides, padding="same", activation="relu")
        plain.build(x.shape)
        fast.build(x.shape)
        fast.set_weights(plain.get_weights())
        np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid"), (2, "same")])
def test_depthwise_convolution_with_its_own_kernel_gradient_equals_keras(strides, padding):
    # MobileNet's depthwise layers learn through a hand-made gradient: it must be Keras's, input and kernel.
    x = tf.random.stateless_normal((3, 9, 8, 6), (5, 6))
    options = dict(strides=strides, padding=padding, use_bias=True)
    grads = _outputs_and_gradients(tf.keras.layers.DepthwiseConv2D(3, **options),
                                   models.Float64GradDepthwiseConv2D(3, **options), x)
    for a, b in zip(*(g[1:] for g in grads)):  # the gradients by x and by the weights
        assert a.dtype == b.dtype == tf.float32
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


REID_GRADIENTS = """
import sys, numpy as np, tensorflow as tf
from helpers import models, training
tf.keras.utils.set_random_seed(0)
reid = models.build_reid((32, 32, 3), alpha=0.35, bn_momentum=0.9)
rng = np.random.default_rng(1)
a, b = (tf.constant(rng.random((60, 32, 32, 3)), tf.float32) for _ in range(2))
same = tf.constant(rng.integers(0, 2, (60, 1)), tf.float32)
@tf.function
def grads():
    with tf.GradientTape() as tape:
        loss = training.bce(same, reid([a, b], training=True))
    return tape.gradient(loss, reid.trainable_variables)
np.savez(sys.argv[1], *[g.numpy() for g in grads()])
"""


def test_a_reid_step_has_the_same_gradients_with_onednn_as_without(tmp_path):
    # The cpu profile's ReID, one training step: TensorFlow's fused BatchNorm kernel under oneDNN was 7 % off.
    grads = []
    for onednn in ("1", "0"):
        out = tmp_path / f"grads{onednn}.npz"
        subprocess.run([sys.executable, "-c", REID_GRADIENTS, str(out)], check=True, capture_output=True,
                       env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn})
        with np.load(out) as f:
            grads.append([f[k] for k in f.files])
    rel = [np.linalg.norm(g - k) / (np.linalg.norm(k) + 1e-12) for g, k in zip(*grads)]
    assert len(rel) > 80 and np.median(rel) < 1e-3 and max(rel) < 1e-2, (np.median(rel), max(rel))


def test_tensorflow_options_are_set_by_the_package_unless_the_environment_sets_them():
    code = "import os, helpers; import tensorflow as tf; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    run = lambda e: subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                                   check=True).stdout.split()[-1]
    assert run(env) == helpers.TF_OPTIONS["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert run({**env, "TF_ENABLE_ONEDNN_OPTS": "0"}) == "0"


def test_fast_kernels_swap_in_and_out_with_the_same_outputs(smoke_nets):
    _, det, _ = smoke_nets
    kinds = {type(l) for l in det._flatten_layers(include_self=False, recursive=True)}
    assert {models.BlockConv2DTranspose, models.PointwiseConv2D, models.Float64GradDepthwiseConv2D} <= kinds
    plain = models.fuse_batchnorm(det, fused=False)
    plain_kinds = {type(l) for l in plain._flatten_layers(include_self=False, recursive=True)}
    assert not plain_kinds & {models.BlockConv2DTranspose, models.PointwiseConv2D, models.FusedBatchNormalization,
                              models.Float64GradDepthwiseConv2D}
    x = np.random.default_rng(0).random((2, *det.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(plain(x, training=False).numpy(), det(x, training=False).numpy(), rtol=1e-4, atol=1e-5)
