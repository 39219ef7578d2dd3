"""helpers.optimizers.Adam: Keras's Adam on TensorFlow's fused kernel, the same numbers in fewer operations."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import optimizers, training


def _fit(opt_class, steps, lr=0.05):
    """A small least-squares problem (well conditioned, so the two optimisers' paths stay comparable)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(64, 5)), tf.float32)
    y = tf.constant(x.numpy() @ rng.normal(size=(5, 3)) + 0.1 * rng.normal(size=(64, 3)), tf.float32)
    w = keras.Variable(np.zeros((5, 3), np.float32))
    b = keras.Variable(np.ones(3, np.float32))
    opt = opt_class(lr)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(x @ w + b - y))
        opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
        return loss

    losses = [float(step()) for _ in range(steps)]
    return np.concatenate([w.numpy().ravel(), b.numpy()]), losses, opt


def test_the_fused_adam_follows_keras_adam_step_by_step():
    ours, our_losses, opt = _fit(optimizers.Adam, 200)
    theirs, their_losses, _ = _fit(keras.optimizers.Adam, 200)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-4)
    assert our_losses[-1] < 0.1 * our_losses[0]  # and it does optimise
    assert int(opt.iterations) == 200


def test_the_fused_adam_keeps_keras_variables_so_checkpoints_and_resets_work(tmp_path):
    _, _, ours = _fit(optimizers.Adam, 3)
    path = tf.train.Checkpoint(opt=ours).write(str(tmp_path / "ours"))
    theirs = keras.optimizers.Adam(0.05)
    theirs.build([keras.Variable(np.zeros((5, 3), np.float32)), keras.Variable(np.zeros(3, np.float32))])
    tf.train.Checkpoint(opt=theirs).read(path).assert_consumed()
    assert len(ours.variables) == len(theirs.variables) == 6  # iterations, learning rate, two moments each
    for a, b in zip(ours.variables, theirs.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    training.reset_optimizer(ours)
    assert all(float(tf.reduce_max(tf.abs(v))) == 0 for v in ours.variables if not v.path.endswith("learning_rate"))
    with pytest.raises(ValueError, match="amsgrad"):
        optimizers.Adam(amsgrad=True)


def test_a_traced_step_has_far_fewer_operations_and_the_same_first_update():
    # A small MobileNet-like stack (convolutions, depthwise convolutions, BatchNorm): the count of
    # operations per variable is what differs, and tracing a real detector twice would cost a minute.
    x = np.random.default_rng(1).random((4, 16, 16, 3), np.float32)
    graphs, weights = {}, {}
    for name, opt_class in (("fused", optimizers.Adam), ("keras", keras.optimizers.Adam)):
        training.reseed(0)
        layers = [keras.Input((16, 16, 3))]
        for filters in (8, 16, 16):
            layers += [keras.layers.Conv2D(filters, 3, padding="same"), keras.layers.BatchNormalization(),
                       keras.layers.ReLU(), keras.layers.DepthwiseConv2D(3, padding="same")]
        net = keras.Sequential(layers + [keras.layers.Conv2D(1, 1)])
        opt = opt_class(1e-3)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(net(x, training=True) - 0.5))
            opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))

        graphs[name] = len(step.get_concrete_function(x).graph.get_operations())
        step(x)
        weights[name] = [v.numpy() for v in net.trainable_variables]
    assert graphs["fused"] < 0.5 * graphs["keras"], graphs
    for a, b in zip(weights["fused"], weights["keras"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
