"""The detector and ReID metrics on cases worked out by hand (thesis 4.2)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import heatmaps, metrics


def one_peak(x, y, side=16, sigma=1.0):
    return heatmaps.gaussian_heatmaps(np.array([[x, y]]), side, side, sigma)


def test_peak_mask_marks_the_peak_and_its_eight_neighbours():
    m = heatmaps.peak_masks(one_peak(5, 7))
    assert m.sum() == 9
    assert m[0, 6:9, 4:7].all()


def test_no_peak_below_threshold():
    assert heatmaps.peak_masks(0.4 * one_peak(5, 7)).sum() == 0


def test_perfect_detector_scores_one():
    true = np.concatenate([one_peak(3, 4), one_peak(10, 12), one_peak(8, 2)])
    counts = metrics.mask_counts(true, true, radius=4)
    assert counts == {"tp": 27, "fp": 0, "hit": 27, "fn": 0}
    assert metrics.precision_recall(counts) == (1.0, 1.0)
    assert metrics.thesis_ap([true, true], [true, true])["ap"] == 1.0
    assert metrics.ranked_ap(true, np.array([[3, 4], [10, 12], [8, 2]]))["ap"] == pytest.approx(1.0)


def test_empty_prediction_scores_zero():
    true = one_peak(6, 6)
    counts = metrics.mask_counts(np.zeros_like(true), true)
    assert counts == {"tp": 0, "fp": 0, "hit": 0, "fn": 9}
    assert metrics.precision_recall(counts) == (0.0, 0.0)
    assert metrics.thesis_ap([np.zeros_like(true)], [true])["ap"] == 0.0
    assert metrics.ranked_ap(np.zeros_like(true), np.array([[6, 6]]))["ap"] == 0.0


def test_five_pixel_miss_with_ranked_peaks_is_a_miss():
    true, pred = np.array([[4, 8]]), one_peak(9, 8)
    assert metrics.ranked_ap(pred, true, radius=4)["ap"] == 0.0
    assert metrics.ranked_ap(pred, true, radius=6)["ap"] == pytest.approx(1.0)


def test_five_pixel_miss_with_thesis_masks_is_partly_matched():
    # Peaks 5 px apart: marked columns 3..5 (label) and 8..10 (prediction). Only column 8 lies
    # closer than 4 px to column 5, so 3 of 9 marked pixels match on each side.
    true, pred = one_peak(4, 8), one_peak(9, 8)
    counts = metrics.mask_counts(pred, true, radius=4)
    assert counts == {"tp": 3, "fp": 6, "hit": 3, "fn": 6}
    assert metrics.precision_recall(counts) == pytest.approx((1 / 3, 1 / 3))


def test_far_miss_is_a_false_positive_and_a_false_negative():
    true, far = one_peak(4, 8), one_peak(13, 8)  # the closest marked pixels are 7 px apart
    assert metrics.mask_counts(far, true, radius=4) == {"tp": 0, "fp": 9, "hit": 0, "fn": 9}


def test_interpolated_ap_takes_the_best_precision_to_the_right():
    # points (p, r): (1.0, 0.2), (0.5, 0.6), (0.8, 0.4)
    # levels 0.2, 0.4, 0.6 -> p_interp 1.0, 0.8, 0.5 -> area 0.2*1 + 0.2*0.8 + 0.2*0.5
    ap = metrics.interpolated_ap([1.0, 0.5, 0.8], [0.2, 0.6, 0.4])
    assert ap == pytest.approx(0.46)
    assert metrics.interpolated_ap([0.9, 0.9], [0.9, 0.9]) == pytest.approx(0.81)
    assert metrics.interpolated_ap([], []) == 0.0


def test_ranked_ap_orders_detections_by_score():
    true = np.array([[4, 4], [10, 10]])
    # image 0: a correct peak at 0.9; image 1: a wrong peak at 0.95 and the right one at 0.6
    pred = np.concatenate([0.9 * one_peak(4, 4), np.maximum(0.95 * one_peak(2, 13), 0.6 * one_peak(10, 10))])
    # ranked: 0.95 miss, 0.9 hit, 0.6 hit -> precision 0, 1/2, 2/3 at recall 0, .5, 1
    # all-point interpolation: 0.5 * 2/3 + 0.5 * 2/3
    assert metrics.ranked_ap(pred, true)["ap"] == pytest.approx(2 / 3)


def test_ranked_ap_counts_each_object_once_when_the_label_peak_is_split():
    # A centre half-way between pixels: the label heatmap has two equal maxima, the object is one.
    pred = one_peak(5.5, 6)
    assert heatmaps.peaks(one_peak(5.5, 6)).sum() == 2
    assert metrics.ranked_ap(pred, np.array([[5.5, 6]]))["ap"] == pytest.approx(1.0)


def test_roc_auc_matches_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(0.5 + 0.25 * (labels - 0.5) + rng.normal(0, 0.25, 500), 0, 1)
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=0.01)
    fpr, tpr = metrics.roc_curve(labels, scores)
    assert np.trapezoid(tpr[::-1], fpr[::-1]) == pytest.approx(roc_auc_score(labels, scores), abs=0.01)


def test_rank_auc_is_exact_with_ties_and_the_exact_bound_reads_identities():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # many ties
    assert metrics.rank_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    ids = rng.integers(0, 50, (400, 2))
    same = (ids[:, 0] == ids[:, 1]).astype(float)
    same[:2] = 1.0, 0.0
    ids[:2] = (7, 7), (7, 8)
    assert metrics.best_pair_auc(ids[:, 0], ids[:, 1], same) == 1.0  # a key of its own per identity
    with pytest.raises(ValueError, match="both classes"):
        metrics.rank_auc(np.ones(5), np.arange(5))


def test_inverted_reid_scores_below_half():
    labels = np.array([1, 1, 0, 0] * 10)
    assert metrics.roc_auc(labels, 1.0 - labels) < 0.05


def test_filter_distance_is_euclidean_to_the_ideal_point():
    assert metrics.filter_distance(0.5, 1.0, 1.0) == 0.0
    assert metrics.filter_distance(0.372, 0.821, 1.0) == pytest.approx(0.220, abs=1e-3)  # thesis S2
    assert metrics.filter_distance(0.540, 0.864, 0.938) == pytest.approx(0.084, abs=1e-3)  # thesis R1
    assert metrics.filter_distance(0.5, 1.0, 0.9) == pytest.approx(0.1)  # the thesis's: above the ideal point
    assert metrics.filter_distance(0.5, 1.0, 0.9, one_sided=True) == 0.0  # S5's: a better AP costs nothing
    assert metrics.filter_distance(0.6, 0.8, 0.9, one_sided=True) == pytest.approx(metrics.filter_distance(0.6, 0.8, 0.9))


def test_heatmaps_with_several_channels_are_rejected():
    with pytest.raises(ValueError, match="one channel"):
        heatmaps.peak_masks(np.zeros((1, 4, 4, 3)))
