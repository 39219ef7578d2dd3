"""What a published image is: the 8-bit output of the anonymise command, and that rounding for tensors."""
from __future__ import annotations

import numpy as np

OUTPUTS = ("float", "uint8")  # a filter's output as computed, or as the anonymise command writes it


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"Unknown output {output!r}; use one of {OUTPUTS}.")
    return output


def to_uint8(images) -> np.ndarray:
    """Float images in [0, 1] to the 8-bit pixels the anonymise command writes (round half to even)."""
    return np.clip(np.round(np.asarray(images, np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)


def quantize(images):
    """The same rounding on float32 tensors, back in [0, 1]: what an attacker of a published image sees."""
    import tensorflow as tf  # here, so that the anonymise command's --help does not load TensorFlow
    x = tf.convert_to_tensor(images, tf.float32)
    return tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0) / 255.0


def quantize_straight_through(images):
    """8-bit rounding in the forward pass, the identity in the backward pass (straight-through estimator),
    so a filter can be trained on what will be published."""
    import tensorflow as tf
    x = tf.convert_to_tensor(images, tf.float32)
    return x + tf.stop_gradient(quantize(x) - x)
