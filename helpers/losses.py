"""The losses of the three networks (thesis Eq. 4) and the filter's privacy terms, in one place."""
from __future__ import annotations

import tensorflow as tf

PRIVACY_TERMS = ("thesis", "confusion", "entropy")
_EPS = 1e-7


def mse(y_true, y_pred):
    """The detector's loss: mean squared error to the heatmap targets."""
    y_pred = tf.cast(y_pred, tf.float32)
    return tf.reduce_mean(tf.square(tf.cast(y_true, tf.float32) - y_pred))


def bce(y_true, y_pred):
    """The ReID's loss: binary cross-entropy of 'same person' probabilities, shape (N,) or (N, 1)."""
    y_true = tf.reshape(tf.cast(y_true, tf.float32), (-1,))
    p = tf.clip_by_value(tf.reshape(tf.cast(y_pred, tf.float32), (-1,)), _EPS, 1.0 - _EPS)
    return -tf.reduce_mean(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p))


def check_privacy(kind: str) -> str:
    if kind not in PRIVACY_TERMS:
        raise ValueError(f"Unknown privacy term {kind!r}; use one of {PRIVACY_TERMS}.")
    return kind


def privacy_loss(kind: str, same_true, same_pred, lam: float):
    """The filter's privacy term, to be minimised by the filter; its scale is 1/lambda.

    'thesis' (Eq. 4): -BCE/lambda, maximising the ReID's loss; a ReID that answers the opposite also
    satisfies it (AUC far below 0.5 still identifies people).
    'confusion': BCE against the target 0.5, divided by lambda: the ReID's best answer is 'unsure'.
    'entropy': minus the binary entropy of the ReID's answer, divided by lambda (maximum-entropy
    privacy, Roy & Boddeti 2019); like 'confusion' it is smallest at 0.5 and ignores the labels.
    """
    if kind == "thesis":
        return -bce(same_true, same_pred) / lam
    if kind == "confusion":
        return bce(tf.fill(tf.shape(tf.reshape(same_true, (-1,))), 0.5), same_pred) / lam
    if kind == "entropy":
        p = tf.clip_by_value(tf.reshape(tf.cast(same_pred, tf.float32), (-1,)), _EPS, 1.0 - _EPS)
        return tf.reduce_mean(p * tf.math.log(p) + (1.0 - p) * tf.math.log(1.0 - p)) / lam
    check_privacy(kind)


def invariance_loss(filtered_a, filtered_b):
    """Mean absolute difference between the filter's outputs of the two images of each pair: zero only
    when the filter maps them to the same image, which no attacker, trained or not, can tell apart.
    An attacker-free privacy term; L1 rather than squared, so its pull does not fade near zero, where
    8-bit rounding decides whether two outputs are the same image."""
    return tf.reduce_mean(tf.abs(tf.cast(filtered_a, tf.float32) - tf.cast(filtered_b, tf.float32)))
