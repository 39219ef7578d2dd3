"""Detector AP (the thesis's and a standard ranked one), ReID ROC AUC and the filter distance (4.2)."""
from __future__ import annotations

import math

import numpy as np

from helpers.heatmaps import as_maps, peak_masks, peaks


def _near(mask_from: np.ndarray, mask_to: np.ndarray, radius: float) -> np.ndarray:
    """For each marked pixel of mask_from: is a marked pixel of mask_to closer than radius?"""
    src = np.argwhere(mask_from)
    dst = np.argwhere(mask_to)
    if len(src) == 0:
        return np.zeros(0, dtype=bool)
    if len(dst) == 0:
        return np.zeros(len(src), dtype=bool)
    d2 = ((src[:, None, :] - dst[None, :, :]) ** 2).sum(-1)
    return (d2 < radius**2).any(axis=1)


def mask_counts(pred_heatmaps, true_heatmaps, radius: float = 4.0, threshold: float = 0.5) -> dict:
    """Thesis 4.2.2 pixel counts over a batch: marked predicted pixels near / far from marked label
    pixels (TP / FP), and marked label pixels with / without a predicted mark nearby (hit / FN)."""
    pred_m = peak_masks(pred_heatmaps, threshold)
    true_m = peak_masks(true_heatmaps, threshold)
    if pred_m.shape != true_m.shape:
        raise ValueError(f"Predicted heatmaps {pred_m.shape} and labels {true_m.shape} differ in shape.")
    tp = fp = hit = fn = 0
    for p, t in zip(pred_m, true_m):
        near_pred = _near(p, t, radius)
        near_true = _near(t, p, radius)
        tp += int(near_pred.sum())
        fp += int((~near_pred).sum())
        hit += int(near_true.sum())
        fn += int((~near_true).sum())
    return {"tp": tp, "fp": fp, "hit": hit, "fn": fn}


def precision_recall(counts: dict) -> tuple[float, float]:
    """Precision over predicted marks, recall over label marks; no prediction at all gives precision 0."""
    n_pred = counts["tp"] + counts["fp"]
    n_true = counts["hit"] + counts["fn"]
    precision = counts["tp"] / n_pred if n_pred else 0.0
    recall = counts["hit"] / n_true if n_true else 0.0
    return precision, recall


def interpolated_ap(precisions, recalls) -> float:
    """Area under p_interp(r) = max precision at recall >= r, over the measured (p, r) points.

    The thesis measures one point per batch and writes AP as a sum over the recall values; we take
    the area of the step curve from recall 0 to the largest recall measured, so a perfect detector
    scores 1 and an empty one 0.
    """
    p = np.asarray(precisions, dtype=np.float64)
    r = np.asarray(recalls, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError("precisions and recalls must be 1-D sequences of equal length.")
    if len(p) == 0:
        return 0.0
    levels = np.unique(r)
    interp = np.array([p[r >= level].max() for level in levels])
    widths = np.diff(np.r_[0.0, levels])
    return float((interp * widths).sum())


def thesis_ap(pred_batches, true_batches, radius: float = 4.0, threshold: float = 0.5) -> dict:
    """Per-batch precision and recall, then the interpolated AP over those points."""
    points = [precision_recall(mask_counts(p, t, radius, threshold)) for p, t in zip(pred_batches, true_batches)]
    precisions = [pr[0] for pr in points]
    recalls = [pr[1] for pr in points]
    return {"ap": interpolated_ap(precisions, recalls), "precisions": precisions, "recalls": recalls}


def ranked_ap(pred_heatmaps, true_centres, radius: float = 4.0, min_score: float = 0.05) -> dict:
    """Standard detection AP: every local maximum above min_score is a detection scored by its heatmap
    value; sweeping the score threshold, a detection is a hit if it lies within radius of a not yet
    matched object centre (greedy, highest score first). All-point interpolated area (VOC 2010+).

    true_centres: per image, the objects' (x, y) in heatmap pixels, as an (N, 2) array (one object
    per image) or a list of (K_i, 2) arrays.
    """
    pred = as_maps(pred_heatmaps)
    pred_peaks = peaks(pred, min_score)
    if isinstance(true_centres, np.ndarray) and true_centres.ndim == 2:
        true_centres = true_centres[:, None, :]
    if len(true_centres) != len(pred):
        raise ValueError(f"{len(pred)} heatmaps but centres for {len(true_centres)} images.")
    scores, hits = [], []
    n_true = 0
    for h, pp, centres in zip(pred, pred_peaks, true_centres):
        gts = np.asarray(centres, dtype=np.float64).reshape(-1, 2)[:, ::-1]  # (y, x) like argwhere
        n_true += len(gts)
        dets = np.argwhere(pp)
        s = h[pp]
        used = np.zeros(len(gts), dtype=bool)
        for idx in np.argsort(-s, kind="stable"):
            scores.append(float(s[idx]))
            hit = False
            if len(gts):
                d2 = ((gts - dets[idx]) ** 2).sum(1)
                d2[used] = np.inf
                j = int(np.argmin(d2))
                if d2[j] < radius**2:
                    used[j] = hit = True
            hits.append(hit)
    if n_true == 0:
        raise ValueError("ranked_ap needs at least one labelled object.")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits_sorted = np.asarray(hits, dtype=bool)[order]
    tp_cum = np.cumsum(hits_sorted)
    fp_cum = np.cumsum(~hits_sorted)
    recall = tp_cum / n_true
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
    mrec = np.r_[0.0, recall]
    mpre = np.r_[0.0, precision]
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    ap = float(((mrec[1:] - mrec[:-1]) * mpre[1:]).sum())
    return {"ap": ap, "precision": precision, "recall": recall}


def roc_auc(labels, scores, num_thresholds: int = 200) -> float:
    """ROC AUC as TensorFlow's default keras.metrics.AUC computes it (thesis 4.2.3)."""
    import keras
    m = keras.metrics.AUC(num_thresholds=num_thresholds)
    m.update_state(np.asarray(labels, np.float32).reshape(-1), np.asarray(scores, np.float32).reshape(-1))
    return float(m.result())


def roc_curve(labels, scores, num_thresholds: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """False-positive rate and recall at the same evenly spaced thresholds keras.metrics.AUC uses."""
    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores).reshape(-1)
    eps = 1e-7
    thr = np.r_[-eps, np.linspace(0, 1, num_thresholds)[1:-1], 1 + eps]
    pos = max(labels.sum(), 1)
    neg = max((~labels).sum(), 1)
    tpr = np.array([(scores[labels] > t).sum() / pos for t in thr])
    fpr = np.array([(scores[~labels] > t).sum() / neg for t in thr])
    return fpr, tpr


def filter_distance(reid_auc: float, detector_ap: float, unfiltered_ap: float, one_sided: bool = False) -> float:
    """Euclidean distance from (AUC, AP) to the ideal point (0.5, AP without a filter) (chapter 5).
    `one_sided`: an AP above the unfiltered detector's costs nothing (the thesis counts it as a distance)."""
    shortfall = unfiltered_ap - detector_ap
    return math.hypot(reid_auc - 0.5, max(shortfall, 0.0) if one_sided else shortfall)


def rank_auc(labels, scores) -> float:
    """Exact ROC AUC (Mann-Whitney U, ties counted half), unlike roc_auc's 200 thresholds."""
    from scipy.stats import rankdata
    labels = np.asarray(labels).reshape(-1) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positive and {n_neg} negative pairs.")
    ranks = rankdata(np.asarray(scores, np.float64).reshape(-1))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_pair_auc(keys_a, keys_b, labels) -> float:
    """The highest AUC that any attacker can reach on these pairs when all it sees of a pair is
    (key_a, key_b), for example the bytes of two published images: every pair of one (key_a, key_b)
    group gets the same score, and ranking the groups by their share of same-identity pairs is the best
    ordering there is. Equal keys everywhere give 0.5; a key of its own per identity gives 1.0."""
    keys = np.stack([np.asarray(keys_a).reshape(-1), np.asarray(keys_b).reshape(-1)], axis=1)
    labels = np.asarray(labels, np.float64).reshape(-1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    share = np.bincount(group, weights=labels) / np.bincount(group)
    return rank_auc(labels, share[group])
