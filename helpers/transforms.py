"""Frozen image transforms an attacker is trained against: trained filters and classic anonymisation.

Every transform maps float images (N, H, W, 3) in [0, 1] to the same shape in [0, 1]. `output="uint8"`
rounds the result as the anonymise command writes it: what a user publishes, so what an attacker gets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from helpers import config
from helpers.images import check_output, quantize

LUMA = (0.299, 0.587, 0.114)       # ITU-R BT.601


def greyscale(images):
    x = tf.convert_to_tensor(images, tf.float32)
    y = tf.tensordot(x, tf.constant(LUMA, tf.float32), axes=[[3], [0]])[..., None]
    return tf.repeat(y, 3, axis=-1)


def gaussian_blur(images, sigma: float):
    """Gaussian blur with `sigma` in pixels; borders are mirrored so a solid image stays solid."""
    x = tf.convert_to_tensor(images, tf.float32)
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    r = min(r, x.shape[1] - 1, x.shape[2] - 1)
    t = np.arange(-r, r + 1, dtype=np.float32)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    kx = tf.constant(np.tile(g[None, :, None, None], (1, 1, 3, 1)))
    ky = tf.constant(np.tile(g[:, None, None, None], (1, 1, 3, 1)))
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")


def pixelate(images, cell: int):
    """Each cell x cell block replaced by its mean colour (edge cells are completed by mirroring)."""
    x = tf.convert_to_tensor(images, tf.float32)
    cell = int(cell)
    if cell <= 1:
        return x
    h, w = x.shape[1], x.shape[2]
    ph, pw = -h % cell, -w % cell
    if ph or pw:
        x = tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="SYMMETRIC")
    means = tf.nn.avg_pool2d(x, cell, cell, "VALID")
    return tf.repeat(tf.repeat(means, cell, axis=1), cell, axis=2)[:, :h, :w]


def add_noise(images, std: float, generator: tf.random.Generator):
    x = tf.convert_to_tensor(images, tf.float32)
    return tf.clip_by_value(x + std * generator.normal(tf.shape(x)), 0.0, 1.0)


@dataclass
class Transform:
    """A frozen image transform with a name: a trained filter or a classic transform."""
    name: str
    kind: str        # "filter" | "classic"
    fn: object       # images -> images
    strength: str = ""
    output: str = "float"  # "float" | "uint8": rounded as the anonymise command writes it

    def __call__(self, images) -> np.ndarray:
        y = self.fn(images)
        if self.output == "uint8":
            y = quantize(y)
        return np.asarray(y, dtype=np.float32)

    def published(self, output: str = "uint8") -> "Transform":
        """The same transform with its output as computed ('float') or as published ('uint8')."""
        return Transform(self.name, self.kind, self.fn, self.strength, check_output(output))


def classic(name: str, seed: int = 0) -> Transform:
    """One of config.CLASSIC_TRANSFORMS at its documented strength, scaled to the width of each batch."""
    if name not in config.CLASSIC_TRANSFORMS:
        raise KeyError(f"Unknown classic transform {name!r}; choose one of {sorted(config.CLASSIC_TRANSFORMS)}.")
    p = config.CLASSIC_TRANSFORMS[name]
    if name == "none":
        return Transform(name, "classic", lambda x: tf.convert_to_tensor(x, tf.float32), "identity")
    if name == "grey":
        return Transform(name, "classic", greyscale, "BT.601 luma")
    if name == "blur":
        return Transform(name, "classic", lambda x: gaussian_blur(x, p["sigma"] * x.shape[2]),
                         f"sigma = width/{round(1 / p['sigma'])}")
    if name == "pixelate":
        return Transform(name, "classic", lambda x: pixelate(x, max(1, round(p["cell"] * x.shape[2]))),
                         f"{round(1 / p['cell'])} cells across")
    generator = tf.random.Generator.from_seed(seed)
    return Transform(name, "classic", lambda x: add_noise(x, p["std"], generator), f"std {p['std']}")


def trained_filter(filt, name: str) -> Transform:
    """A trained filter, frozen: inference mode, traced once per image size."""
    fn = tf.function(lambda x: filt(x, training=False), reduce_retracing=True)
    return Transform(name, "filter", lambda x: fn(tf.convert_to_tensor(x, tf.float32)))


def constant(value: float = 0.5) -> Transform:
    """Every image becomes the same grey image: nothing can leak (a test's lower bound)."""
    return Transform("constant", "classic", lambda x: tf.fill(tf.shape(x), value), f"{value}")
