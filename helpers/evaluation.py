"""Inference-mode evaluation of a (filter, detector, ReID) triple on fixed data (thesis 4.2)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import tensorflow as tf

from helpers import metrics
from helpers.heatmaps import to_heatmap_coords
from helpers.images import check_output, quantize


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


_TRACED: OrderedDict = OrderedDict()  # (id(network), id(filter), output) -> (network, filter, traced prediction)
TRACED_KEPT = 8  # the most recently used ones; older ones (and their networks) are let go


def _predictor(net, filt, output: str):
    """`net` in inference mode on the filter's float or 8-bit output, as one traced function per
    (network, filter, output): validation runs every epoch, and eager calls of a MobileNet cost about
    half again as much as a traced one on our CPUs."""
    key = (id(net), id(filt), output)
    hit = _TRACED.get(key)
    if hit is not None and hit[0] is net and hit[1] is filt:
        _TRACED.move_to_end(key)
        return hit[2]

    def transform(x):
        if filt is None:
            return x
        y = filt(x, training=False)
        return quantize(y) if output == "uint8" else y

    @tf.function(reduce_retracing=True)
    def predict(*inputs):
        inputs = [transform(x) for x in inputs]
        return net(inputs if len(inputs) > 1 else inputs[0], training=False)

    _TRACED[key] = (net, filt, predict)
    while len(_TRACED) > TRACED_KEPT:
        _TRACED.popitem(last=False)
    return predict


def predict_heatmaps(nets, images: np.ndarray, batch_size: int, output: str = "float") -> np.ndarray:
    """The detector's heatmaps on the filter's float or 8-bit output (the images themselves without a filter)."""
    predict = _predictor(nets.detector, nets.filter, check_output(output))
    return np.concatenate([predict(tf.convert_to_tensor(images[s:e])).numpy()
                           for s, e in _batches(len(images), batch_size)])


def predict_same(reid, pairs, batch_size: int, filt=None, output: str = "float") -> np.ndarray:
    """The ReID's same-identity scores on pairs through the filter (float or 8-bit output)."""
    predict = _predictor(reid, filt, check_output(output))
    out = []
    for s, e in _batches(len(pairs), batch_size):
        a, b = pairs.images(s, e)
        out.append(predict(tf.convert_to_tensor(a), tf.convert_to_tensor(b)).numpy().reshape(-1))
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


def strongest(aucs) -> int:
    """Index of the ReID furthest from chance: an AUC far below 0.5 identifies people as well."""
    return int(np.argmax([abs(a - 0.5) for a in aucs]))


def detector_ap(nets, det_set, batch_size: int, radius: float, output: str = "float") -> float:
    """The thesis's AP alone (no ReID scoring) on the filter's float or 8-bit output."""
    heat = predict_heatmaps(nets, det_set.images, batch_size, output)
    return detector_metrics(heat, det_set, batch_size, radius)["detector_ap"]


def evaluate(nets, det_set, pairs, batch_size: int, radius: float, unfiltered_ap: float | None = None,
             keep_predictions: bool = False, output: str = "float") -> dict:
    """AP (thesis and ranked), ROC AUC and, given the unfiltered AP, the filter distance.
    With a pool of ReIDs, `reid_auc` is the strongest one's and `reid_auc_<i>` each member's."""
    heat = predict_heatmaps(nets, det_set.images, batch_size, output)
    scores = [predict_same(reid, pairs, batch_size, nets.filter, output) for reid in nets.reids]
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
