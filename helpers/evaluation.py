"""Inference-mode evaluation of a (filter, detector, ReID) triple on fixed data (thesis 4.2)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from helpers import metrics
from helpers.heatmaps import to_heatmap_coords
from helpers.images import check_output, quantize


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def predict_heatmaps(nets, images: np.ndarray, batch_size: int, transform=None) -> np.ndarray:
    out = []
    for s, e in _batches(len(images), batch_size):
        x = tf.convert_to_tensor(images[s:e])
        x = transform(x) if transform is not None else x
        out.append(nets.detector(x, training=False).numpy())
    return np.concatenate(out)


def predict_same(reid, pairs, batch_size: int, transform=None) -> np.ndarray:
    out = []
    for s, e in _batches(len(pairs), batch_size):
        a, b = pairs.images(s, e)
        if transform is not None:
            a, b = transform(tf.convert_to_tensor(a)), transform(tf.convert_to_tensor(b))
        out.append(reid([a, b], training=False).numpy().reshape(-1))
    return np.concatenate(out)


def filter_transform(filt, output: str = "float"):
    """The filter in inference mode, its output rounded to 8 bits when output='uint8'; None: no filter."""
    check_output(output)
    if filt is None:
        return None
    if output == "uint8":
        return lambda x: quantize(filt(x, training=False))
    return lambda x: filt(x, training=False)


def detector_metrics(heat: np.ndarray, det_set, batch_size: int, radius: float) -> dict:
    """The thesis's AP over per-batch precision/recall points, and the confidence-ranked AP beside it."""
    pred_batches = [heat[s:e] for s, e in _batches(len(heat), batch_size)]
    true_batches = [det_set.heatmaps[s:e] for s, e in _batches(len(heat), batch_size)]
    thesis = metrics.thesis_ap(pred_batches, true_batches, radius)
    return {
        "detector_ap": thesis["ap"],
        "ranked_ap": metrics.ranked_ap(heat, [to_heatmap_coords(c) for c in det_set.centres], radius)["ap"],
        "precision": float(np.mean(thesis["precisions"])),
        "recall": float(np.mean(thesis["recalls"])),
    }


def strongest(aucs) -> int:
    """Index of the ReID furthest from chance: an AUC far below 0.5 identifies people as well."""
    return int(np.argmax([abs(a - 0.5) for a in aucs]))


def detector_ap(nets, det_set, batch_size: int, radius: float, output: str = "float") -> float:
    """The thesis's AP alone (no ReID scoring) on the filter's float or 8-bit output."""
    heat = predict_heatmaps(nets, det_set.images, batch_size, filter_transform(nets.filter, output))
    return detector_metrics(heat, det_set, batch_size, radius)["detector_ap"]


def evaluate(nets, det_set, pairs, batch_size: int, radius: float, unfiltered_ap: float | None = None,
             keep_predictions: bool = False, output: str = "float") -> dict:
    """AP (thesis and ranked), ROC AUC and, given the unfiltered AP, the filter distance.
    With a pool of ReIDs, `reid_auc` is the strongest one's and `reid_auc_<i>` each member's."""
    transform = filter_transform(nets.filter, output)
    heat = predict_heatmaps(nets, det_set.images, batch_size, transform)
    scores = [predict_same(reid, pairs, batch_size, transform) for reid in nets.reids]
    aucs = [metrics.roc_auc(pairs.labels, s) for s in scores]
    k = strongest(aucs)
    same = scores[k]
    result = {**detector_metrics(heat, det_set, batch_size, radius), "reid_auc": aucs[k]}
    if len(aucs) > 1:
        result.update({f"reid_auc_{i}": a for i, a in enumerate(aucs)})
    if unfiltered_ap is not None:
        result["distance"] = metrics.filter_distance(result["reid_auc"], result["detector_ap"], unfiltered_ap)
    if keep_predictions:
        result["heatmaps"] = heat
        result["same_scores"] = same
    return result
