"""The filter, the detector and the ReID of thesis section 4.1, built with Keras 3."""
from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

from helpers.data_shapes import detector_shape, reid_shape

HEAD_WIDTHS = (256, 128, 64)  # deconvolution widths: the thesis does not give them; CenterNet's


@keras.saving.register_keras_serializable(package="anonymisation")
class SquaredDifference(layers.Layer):
    """Element-wise (a - b)^2 of two feature vectors (thesis 4.1.2)."""

    def call(self, inputs):
        a, b = inputs
        return keras.ops.square(a - b)


def _batch_norm_training(x, gamma, beta, epsilon: float):
    """Training-mode BatchNorm over batch, height and width, and its gradient written out by hand:
    (y, batch mean, biased batch variance). Not TensorFlow's fused kernel: under oneDNN that kernel's
    gradients were 7 % off (median over a MobileNet's variables; 17 % at worst) from Keras's and from the
    same kernel without oneDNN, which agree to 0.003 %. Against a float64 reference, though, this path is
    no closer than that kernel under oneDNN (1.8 % against 1.6 %: at initialisation the gradients are
    ill-conditioned; benchmarks/README.md)."""
    axes = [0, 1, 2]

    @tf.custom_gradient
    def norm(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes)
        inv = tf.math.rsqrt(variance + epsilon)
        xhat = (x - mean) * inv

        def grad(dy, *_):  # only y carries a gradient; the statistics feed the moving averages
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
            dbeta = tf.reduce_sum(dy, axes)
            dgamma = tf.reduce_sum(dy * xhat, axes)
            return gamma * inv / n * (n * dy - dbeta - xhat * dgamma), dgamma, dbeta
        return (xhat * gamma + beta, mean, variance), grad
    return norm(x, gamma, beta)


@keras.saving.register_keras_serializable(package="anonymisation")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras's BatchNormalization on 4-D channels-last input computed with fewer ops: in training mode by
    `_batch_norm_training` (its gradient written out), in inference mode as a per-channel affine map.

    Keras 3 normalises with a dozen element-wise ops and differentiates each. TensorFlow's fused kernel is
    not used: its gradients under oneDNN were 7 % off (`_batch_norm_training`). Same weights, same momentum;
    its moving variance is updated with the unbiased batch variance (n/(n-1), n = batch x height x width),
    Keras's with the biased one. Anything else (masks, other axes) takes Keras's path.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3) or not (self.scale and self.center):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        if training and self.trainable:
            y, mean, variance = _batch_norm_training(
                x, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta), self.epsilon)
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            mean = self.momentum * self.moving_mean + (1.0 - self.momentum) * mean
            variance = self.momentum * self.moving_variance + (1.0 - self.momentum) * variance * n / (n - 1.0)
            replicas = tf.distribute.get_replica_context()
            if replicas is not None and replicas.num_replicas_in_sync > 1:  # tf.distribute: every copy the same
                mean, variance = replicas.all_reduce(tf.distribute.ReduceOp.MEAN, [mean, variance])
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        else:  # an affine map per channel: its gradient (the filter step's, through frozen networks) is a product
            scale = self.gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
            y = x * scale + (self.beta - self.moving_mean * scale)
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="anonymisation")
class PointwiseConv2D(layers.Conv2D):
    """Keras's Conv2D; a 1x1, stride-1 one is computed as a matrix product.

    On our 2-core CPUs TensorFlow's convolution gradients (Conv2DBackpropInput/Filter) are several times
    slower than the forward convolution, while a matrix product's gradients are matrix products. Same
    weights, same result (to float rounding). MobileNets are mostly 1x1 convolutions.
    """

    def call(self, inputs):
        k = self.kernel
        if tuple(self.kernel_size) != (1, 1) or tuple(self.strides) != (1, 1) or tuple(self.dilation_rate) != (1, 1) \
                or self.groups != 1 or self.data_format != "channels_last":
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs)
        y = tf.matmul(tf.reshape(x, (-1, k.shape[2])), tf.reshape(tf.cast(k, x.dtype), (k.shape[2], k.shape[3])))
        y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [k.shape[3]]], 0))
        if self.use_bias:
            y = y + tf.cast(self.bias, y.dtype)
        return self.activation(y) if self.activation is not None else y


@keras.saving.register_keras_serializable(package="anonymisation")
class BlockConv2DTranspose(layers.Conv2DTranspose):
    """Keras's Conv2DTranspose; the detector head's kind (4x4 kernel, stride 2, same padding) is computed
    as one matrix product and an overlap-add.

    Each input pixel spreads a 4x4 patch over the output at stride 2, and a 4x4 patch is four 2x2 blocks,
    each of which tiles the output without overlap: a depth_to_space of the product shifted by one pixel.
    Same weights, same result as tf.nn.conv2d_transpose (tests/test_models.py); on our CPUs its training
    step is faster, because TensorFlow computes a transposed convolution with its slow gradient kernel.
    """

    def call(self, inputs):
        if tuple(self.kernel_size) != (4, 4) or tuple(self.strides) != (2, 2) or self.padding != "same" \
                or tuple(self.dilation_rate) != (1, 1) or self.output_padding is not None \
                or self.data_format != "channels_last":
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs)
        h, w, cin = x.shape[1], x.shape[2], x.shape[3]
        cout = self.filters
        # kernel (ty, tx, out, in) with ty = 2 ay + ry -> (in, block (ay, ax), ry, rx, out)
        k = tf.reshape(tf.cast(self.kernel, x.dtype), (2, 2, 2, 2, cout, cin))
        k = tf.reshape(tf.transpose(k, (5, 0, 2, 1, 3, 4)), (cin, 16 * cout))
        p = tf.reshape(tf.matmul(tf.reshape(x, (-1, cin)), k), (-1, h, w, 4, 4 * cout))
        # Block (ay, ax) lands 2 ay - 1, 2 ax - 1 pixels off. Shifted by whole input pixels (ay, ax) on a grid one
        # pixel larger, the four blocks add up before one depth_to_space, and a crop of one pixel at each side
        # ends it. tf.unstack and tf.slice, not indexing: on our CPUs the gradient of a strided slice
        # (StridedSliceGrad) took an eighth of a cpu-profile iteration's kernel time; theirs are a stack and a pad.
        q = 0
        for block, (ay, ax) in zip(tf.unstack(p, axis=3), ((0, 0), (0, 1), (1, 0), (1, 1))):
            q = q + tf.pad(block, [[0, 0], [ay, 1 - ay], [ax, 1 - ax], [0, 0]])
        out = tf.slice(tf.nn.depth_to_space(q, 2), [0, 1, 1, 0], [-1, 2 * h, 2 * w, -1])
        if self.use_bias:
            out = out + tf.cast(self.bias, out.dtype)
        return self.activation(out) if self.activation is not None else out


def _depthwise(x, kernel, strides, padding: str):
    """tf.nn.depthwise_conv2d whose kernel gradient is TensorFlow's own kernel run in float64.

    Under oneDNN (helpers/__init__.py turns it on) a float32 DepthwiseConv2dNativeBackpropFilter goes to
    oneDNN, which on our AVX2 CPU took 4 ms a call on MobileNet's small maps (60 x 2 x 2 x 179) and more
    than half of a ReID step; oneDNN does not take float64, and TensorFlow's kernel in float64 is 5x faster.
    """
    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            dx = tf.nn.depthwise_conv2d_backprop_input(tf.shape(x), kernel, dy, strides, padding)
            dk = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=tf.cast(x, tf.float64), filter_sizes=tf.shape(kernel), out_backprop=tf.cast(dy, tf.float64),
                strides=strides, padding=padding)
            return dx, tf.cast(dk, kernel.dtype)
        return tf.nn.depthwise_conv2d(x, kernel, strides, padding), grad
    return conv(x, kernel)


@keras.saving.register_keras_serializable(package="anonymisation")
class Float64GradDepthwiseConv2D(layers.DepthwiseConv2D):
    """Keras's DepthwiseConv2D whose kernel gradient runs on TensorFlow's own kernel (`_depthwise`).
    Same weights, same output, same gradients (to float rounding)."""

    def call(self, inputs):
        if tuple(self.dilation_rate) != (1, 1) or self.data_format != "channels_last":
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs)
        y = _depthwise(x, tf.cast(self.kernel, x.dtype), (1, *self.strides, 1), self.padding.upper())
        if self.use_bias:
            y = y + tf.cast(self.bias, y.dtype)
        return self.activation(y) if self.activation is not None else y


# Keras's layer -> the same layer computed by a faster kernel on our CPUs (same weights and config)
FAST_LAYERS = {layers.BatchNormalization: FusedBatchNormalization, layers.Conv2D: PointwiseConv2D,
               layers.Conv2DTranspose: BlockConv2DTranspose,
               layers.DepthwiseConv2D: Float64GradDepthwiseConv2D}


def fuse_batchnorm(model: keras.Model, fused: bool = True) -> keras.Model:
    """A copy of a functional model (same weights, nested models included) whose BatchNormalization,
    1x1 Conv2D, Conv2DTranspose and DepthwiseConv2D layers use the faster kernels above, or with fused=False,
    Keras's own (benchmarks/train_step.py compares)."""
    swap = FAST_LAYERS if fused else {fast: plain for plain, fast in FAST_LAYERS.items()}

    def clone(layer):
        cls = swap.get(type(layer), layer.__class__)
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


PRECISIONS = ("float32", "mixed_bfloat16")


@contextlib.contextmanager
def precision(policy: str = "float32"):
    """Networks built inside compute in `policy` ("mixed_bfloat16": bfloat16 arithmetic, float32
    weights); outputs, losses and BatchNorm statistics stay float32. The global policy is restored after."""
    if policy not in PRECISIONS:
        raise ValueError(f"Unknown precision {policy!r}; use one of {PRECISIONS}.")
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def build_filter(kernels=(5, 7, 7, 5, 3), name: str = "filter") -> keras.Model:
    """Five 3x3 convolutions, no bias, stride 1, same padding, ReLU x4 then sigmoid (thesis 4.1.4).

    Takes images in [0, 1] of any size and returns images of the same size in [0, 1].
    """
    kernels = tuple(int(k) for k in kernels)
    if len(kernels) != 5 or kernels[-1] != 3 or min(kernels) < 1:
        raise ValueError(f"A filter has five layers ending in 3 (RGB) kernels, got {kernels}.")
    inputs = keras.Input((None, None, 3), name="image")
    x = inputs
    for i, k in enumerate(kernels):
        last = i == len(kernels) - 1
        x = layers.Conv2D(k, 3, padding="same", use_bias=False, activation="sigmoid" if last else "relu",
                          name=f"conv{i + 1}", dtype="float32" if last else None)(x)
    return keras.Model(inputs, x, name=name)


def _load_backbone_weights(weights):
    """Split weights= into what keras.applications takes and an optional file to load after."""
    if weights is None or weights == "imagenet":
        return weights, None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights={weights!r}: expected 'imagenet', None or an existing weights file.")
    return None, path


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Keras's MobileNets hard-code momentum 0.999: trained from scratch for a few hundred steps
    their moving statistics lag far behind and inference-mode outputs are useless. Returns the count."""
    n = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
            n += 1
    return n


def build_detector(image_shape, alpha: float = 1.0, weights=None, bn_momentum: float = 0.99,
                   head_widths=None, name: str = "detector") -> keras.Model:
    """MobileNetV2 without top, 3 x (Conv2DTranspose s2 -> BN -> ReLU), Conv2D to 1 channel (4.1.1).

    Input: images in [0, 1] (the filter's output range); output: a heatmap at 1/4 of the input size.
    """
    h, w = image_shape[:2]
    if h % 32 or w % 32:
        raise ValueError(f"Detector input {image_shape} must be a multiple of 32 in height and width.")
    if head_widths is None:  # scale CenterNet's widths with the backbone's width multiplier
        head_widths = tuple(max(16, round(w * alpha / 8) * 8) for w in HEAD_WIDTHS)
    app_weights, path = _load_backbone_weights(weights)
    backbone = keras.applications.MobileNetV2(input_shape=(h, w, 3), alpha=alpha, include_top=False,
                                              weights=app_weights)
    if path is not None:
        backbone.load_weights(path)
    backbone = fuse_batchnorm(backbone)
    inputs = keras.Input((h, w, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(inputs)
    x = backbone(x)
    for i, width in enumerate(head_widths):
        x = BlockConv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"deconv{i + 1}")(x)
        x = FusedBatchNormalization(name=f"deconv{i + 1}_bn")(x)
        x = layers.ReLU(name=f"deconv{i + 1}_relu")(x)
    outputs = PointwiseConv2D(1, 1, name="heatmap", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=name)
    set_batchnorm_momentum(model, bn_momentum)
    return model


def mobilenet_embedding(image_shape, alpha: float = 1.0, weights=None, name: str = "embedding") -> keras.Model:
    """MobileNetV1 without top, average-pooled: one feature vector per image in [0, 1]."""
    h, w = image_shape[:2]
    app_weights, path = _load_backbone_weights(weights)
    backbone = keras.applications.MobileNet(input_shape=(h, w, 3), alpha=alpha, include_top=False,
                                            weights=app_weights, pooling="avg",
                                            name=None if name == "embedding" else f"{name}_mobilenet")
    if path is not None:
        backbone.load_weights(path)
    backbone = fuse_batchnorm(backbone)
    embed_in = keras.Input((h, w, 3))
    return keras.Model(embed_in, backbone(layers.Rescaling(2.0, offset=-1.0)(embed_in)), name=name)


def plain_cnn_embedding(image_shape, widths=(16, 32, 64, 64), name: str = "cnn_embedding") -> keras.Model:
    """A small plain CNN: 3x3 stride-2 convolutions with BatchNorm and ReLU, then global average pooling."""
    h, w = image_shape[:2]
    inputs = keras.Input((h, w, 3))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = FusedBatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU()(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x), name=name)


def siamese(image_shape, embed_a: keras.Model, embed_b: keras.Model | None = None, name: str = "reid") -> keras.Model:
    """Two images -> two feature vectors -> squared difference -> Dense(1, sigmoid) (thesis 4.1.2).
    One embedding for both images (shared weights, the thesis's ReID) unless `embed_b` is given."""
    h, w = image_shape[:2]
    a = keras.Input((h, w, 3), name="image_a")
    b = keras.Input((h, w, 3), name="image_b")
    fa, fb = embed_a(a), (embed_b or embed_a)(b)
    diff2 = SquaredDifference(name="squared_difference")([fa, fb])
    same = layers.Dense(1, activation="sigmoid", name="same_identity", dtype="float32")(diff2)
    return keras.Model([a, b], same, name=name)


def build_reid(image_shape, alpha: float = 1.0, weights=None, bn_momentum: float = 0.99,
               name: str = "reid") -> keras.Model:
    """Siamese MobileNetV1 (one backbone, shared weights), squared difference, Dense(1, sigmoid) (4.1.2)."""
    model = siamese(image_shape, mobilenet_embedding(image_shape, alpha, weights), name=name)
    set_batchnorm_momentum(model, bn_momentum)
    return model


def build_cnn_reid(image_shape, bn_momentum: float = 0.99, name: str = "reid") -> keras.Model:
    """The same Siamese head on a small plain CNN instead of MobileNetV1 (not in the thesis; notebook 06
    found it a stronger attacker on squares than the MobileNet at cpu sizes)."""
    model = siamese(image_shape, plain_cnn_embedding(image_shape), name=name)
    set_batchnorm_momentum(model, bn_momentum)
    return model


def count_weights(model: keras.Model) -> int:
    return int(sum(keras.ops.size(v) for v in model.trainable_weights))


def build_reid_of(kind: str, image_shape, alpha: float = 1.0, weights=None, bn_momentum: float = 0.99,
                  name: str = "reid") -> keras.Model:
    """A ReID by backbone: "mobilenet" (the thesis's) or "cnn" (the small plain CNN)."""
    if kind == "mobilenet":
        return build_reid(image_shape, alpha, weights, bn_momentum, name=name)
    if kind == "cnn":
        return build_cnn_reid(image_shape, bn_momentum, name=name)
    raise ValueError(f"Unknown ReID {kind!r}; use 'mobilenet' or 'cnn'.")


def networks_for(profile, dataset: str, kernels, weights=None, reids="mobilenet", policy: str | None = None):
    """Filter, detector and ReID at a profile's sizes and precision (`policy` overrides the profile's).
    `reids`: one backbone name (one ReID), or a tuple of them (a list of ReIDs: a pool)."""
    with precision(policy or profile.precision):
        return _networks(profile, dataset, kernels, weights, reids)


def _networks(profile, dataset, kernels, weights, reids):
    filt = build_filter(kernels)
    det = build_detector(detector_shape(profile, dataset), profile.alpha, weights, profile.bn_momentum)
    shape = reid_shape(profile, dataset)
    if isinstance(reids, str):
        return filt, det, build_reid_of(reids, shape, profile.alpha, weights, profile.bn_momentum)
    pool = [build_reid_of(k, shape, profile.alpha, weights, profile.bn_momentum, name=f"reid{i}_{k}")
            for i, k in enumerate(reids)]
    return filt, det, pool


def load(path) -> keras.Model:
    """Load a network saved by the notebooks (a .keras file), naming the notebook to run if missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the notebook that writes it first "
                                "(03_networks for results/none/, 04_adversarial_training for a variant).")
    model = keras.models.load_model(path, compile=False)
    # a detector or ReID saved before the faster kernels existed gets them (same weights, same function)
    plain = {type(l) for l in model._flatten_layers(include_self=False, recursive=True)} & {
        layers.BatchNormalization, layers.Conv2DTranspose, layers.DepthwiseConv2D}
    return fuse_batchnorm(model) if plain else model
