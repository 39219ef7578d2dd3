"""The losses of the three networks (thesis Eq. 4) and the filter's privacy terms, in one place."""
from __future__ import annotations

import tensorflow as tf

PRIVACY_TERMS = ("thesis", "confusion", "entropy")
INVARIANCE_OF = ("images", "colours", "colours+texture")
INVARIANCE_SCALES = ("absolute", "contrast")
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


# Directions in RGB along which colour_invariance_loss compares the two images' colours: the three
# channels, brightness and the two opponent axes (red-green, yellow-blue).
_COLOUR_AXES = tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
                            [3 ** -0.5, 3 ** -0.5, 3 ** -0.5],
                            [2 ** -0.5, -(2 ** -0.5), 0.0],
                            [6 ** -0.5, 6 ** -0.5, -2 * 6 ** -0.5]])


def _on_colour_axes(images):
    """(N, H, W, 3) images as their values along the six colour axes: (N, H, W, 6), float32."""
    return tf.einsum("nhwc,ac->nhwa", tf.cast(images, tf.float32), _COLOUR_AXES)


def colour_invariance_loss(filtered_a, filtered_b):
    """How far apart the colours of the two filtered images of each pair are, wherever they sit: the
    one-dimensional Wasserstein distance between their pixels' values along six colour axes (sorted
    values compared; sliced Wasserstein, Rabin et al. 2011), averaged. Zero when one image's pixels are a
    rearrangement of the other's, so unlike `invariance_loss` it does not pull two people in different
    places or poses towards a blank image: it takes away what colours say about who someone is and
    leaves where they are. Needs images of the same size with three channels."""
    def sorted_values(x):
        projected = _on_colour_axes(x)
        return tf.sort(tf.reshape(projected, (tf.shape(projected)[0], -1, _COLOUR_AXES.shape[0])), axis=1)
    return tf.reduce_mean(tf.abs(sorted_values(filtered_a) - sorted_values(filtered_b)))


def texture_invariance_loss(filtered_a, filtered_b):
    """How far apart the two filtered images' textures are, wherever they sit: the sliced Wasserstein
    distance (as in `colour_invariance_loss`) between their distributions of absolute differences of
    neighbouring pixels, across and down, pooled, along the six colour axes. Stripes, checks and their
    period, or a bag's outline, show here and not in the colours alone; pooling both directions and
    taking absolute values makes the term blind to mirroring and to quarter turns, so a person walking
    the other way is not asked to change."""
    def sorted_edges(x):
        projected = _on_colour_axes(x)
        shape = (tf.shape(projected)[0], -1, _COLOUR_AXES.shape[0])
        across = tf.reshape(tf.abs(projected[:, :, 1:] - projected[:, :, :-1]), shape)
        down = tf.reshape(tf.abs(projected[:, 1:] - projected[:, :-1]), shape)
        return tf.sort(tf.concat([across, down], axis=1), axis=1)
    return tf.reduce_mean(tf.abs(sorted_edges(filtered_a) - sorted_edges(filtered_b)))


def contrast(images):
    """Mean absolute deviation of each image's pixels from that image's mean colour: how much an image
    says at all, on the scale of its values."""
    x = tf.cast(images, tf.float32)
    return tf.reduce_mean(tf.abs(x - tf.reduce_mean(x, axis=(1, 2), keepdims=True)))


FLOOR_WEIGHT = 0.05  # the contrast floor's term when the output is flat: a few times the heatmap MSE


def contrast_floor_loss(filtered, floor: float):
    """FLOOR_WEIGHT x (1 - contrast / floor) while the filtered images' contrast is below `floor`, else 0.
    A filter that keeps the detector's signal in the last bits of an almost grey image publishes an
    image whose bytes round that signal to 127-or-128 patterns; with a floor it has to use its bytes,
    so rounding is a small error, not the thing that decides what is seen."""
    return FLOOR_WEIGHT * tf.nn.relu(1.0 - contrast(filtered) / floor)


def check_invariance(kind: str, scale: str = "absolute") -> tuple[str, str]:
    if kind not in INVARIANCE_OF:
        raise ValueError(f"Unknown invariance_of {kind!r}; use one of {INVARIANCE_OF}.")
    if scale not in INVARIANCE_SCALES:
        raise ValueError(f"Unknown invariance_scale {scale!r}; use one of {INVARIANCE_SCALES}.")
    return kind, scale


def invariance_term(kind: str, filtered_a, filtered_b, scale: str = "absolute", reference=None):
    """The attacker-free term: 'images' (invariance_loss), 'colours' (colour_invariance_loss) or
    'colours+texture' (that plus texture_invariance_loss) between the two filtered images of each pair.
    scale 'absolute' takes it as it is. 'contrast' divides it by the contrast of `reference`, the
    filtered detector images of the same step: an attacker with
    BatchNormalization reads a difference of 0.001 as well as one of 0.1, so a term that a filter can
    shrink by shrinking everything it outputs (towards an all-grey image whose last bytes still carry
    who is who) protects nobody. Divided by the contrast the detector is given, only making the pair
    alike lowers it."""
    check_invariance(kind, scale)
    if kind == "images":
        gap = invariance_loss(filtered_a, filtered_b)
    else:
        gap = colour_invariance_loss(filtered_a, filtered_b)
        if kind == "colours+texture":
            gap = gap + texture_invariance_loss(filtered_a, filtered_b)
    if scale == "contrast":
        if reference is None:
            raise ValueError("invariance_scale='contrast' needs the filtered detector images as reference.")
        gap = gap / (contrast(reference) + 1e-6)
    return gap
