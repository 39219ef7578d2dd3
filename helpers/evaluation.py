"""Inference-mode evaluation of a (filter, detector, ReID) triple on fixed data (thesis 4.2)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from helpers import metrics
from helpers.heatmaps import to_heatmap_coords


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


def predict_same(nets, pairs, batch_size: int, transform=None) -> np.ndarray:
    out = []
    for s, e in _batches(len(pairs), batch_size):
        a, b = pairs.images(s, e)
        if transform is not None:
            a, b = transform(tf.convert_to_tensor(a)), transform(tf.convert_to_tensor(b))
        out.append(nets.reid([a, b], training=False).numpy().reshape(-1))
    return np.concatenate(out)


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


def evaluate(nets, det_set, pairs, batch_size: int, radius: float, baseline_ap: float | None = None,
             keep_predictions: bool = False) -> dict:
    """AP (thesis and ranked), ROC AUC and, given the unfiltered AP, the filter distance."""
    transform = None if nets.filter is None else (lambda x: nets.filter(x, training=False))
    heat = predict_heatmaps(nets, det_set.images, batch_size, transform)
    same = predict_same(nets, pairs, batch_size, transform)
    result = {**detector_metrics(heat, det_set, batch_size, radius), "reid_auc": metrics.roc_auc(pairs.labels, same)}
    if baseline_ap is not None:
        result["distance"] = metrics.filter_distance(result["reid_auc"], result["detector_ap"], baseline_ap)
    if keep_predictions:
        result["heatmaps"] = heat
        result["same_scores"] = same
    return result
