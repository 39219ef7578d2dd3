"""Property-based tests (hypothesis): the metrics and the annotation parser on inputs nobody wrote by hand."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import metrics, tvpr

unit = st.floats(0.0, 1.0, allow_nan=False)
points = st.lists(st.tuples(unit, unit), min_size=1, max_size=30)
quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@quick
@given(points, st.randoms(use_true_random=False))
def test_interpolated_ap_is_in_0_1_and_ignores_the_order_of_batches(pr, rnd):
    p, r = zip(*pr)
    ap = metrics.interpolated_ap(p, r)
    assert 0.0 <= ap <= 1.0
    shuffled = list(pr)
    rnd.shuffle(shuffled)
    assert metrics.interpolated_ap(*zip(*shuffled)) == pytest.approx(ap, abs=1e-12)
    assert ap <= max(r) + 1e-12  # the curve ends at the largest recall measured


@quick
@given(st.lists(st.tuples(st.integers(2, 13), st.integers(2, 13)), min_size=1, max_size=6), unit)
def test_ranked_ap_is_in_0_1_and_one_for_peaks_on_every_centre(centres, noise):
    size = 16
    yy, xx = np.mgrid[0:size, 0:size]
    maps = []
    for x, y in centres:  # one object per image; its heatmap is a Gaussian peaking on the centre
        maps.append(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0)[..., None])
    true = np.array(centres, np.float64)
    assert metrics.ranked_ap(np.stack(maps), true, radius=1.0)["ap"] == pytest.approx(1.0)
    rng = np.random.default_rng(int(noise * 1e6))
    other = rng.random((len(centres), size, size, 1))
    assert 0.0 <= metrics.ranked_ap(other, true, radius=1.0)["ap"] <= 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(unit, min_size=2, max_size=40), st.data())
def test_the_auc_of_a_perfect_ranking_is_one_and_of_the_reversed_ranking_zero(scores, data):
    labels = data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores)))
    if all(labels) or not any(labels):
        labels[0] = not labels[0]
    labels = np.array(labels, np.float32)
    perfect = 0.6 + 0.4 * np.array(scores) * labels - 0.6 * (1 - labels)  # every positive above every negative
    perfect = np.where(labels > 0, np.maximum(perfect, 0.75), np.minimum(perfect + 0.6, 0.25))
    assert metrics.roc_auc(labels, perfect) == pytest.approx(1.0, abs=1e-6)
    assert metrics.roc_auc(labels, 1.0 - perfect) == pytest.approx(0.0, abs=1e-6)


@quick
@given(unit, unit, unit)
def test_the_filter_distance_is_zero_only_at_the_ideal_point(auc, ap, unfiltered):
    d = metrics.filter_distance(auc, ap, unfiltered)
    assert d >= 0 and metrics.filter_distance(0.5, unfiltered, unfiltered) == 0
    assert (d == 0) == (auc == 0.5 and ap == unfiltered)


@quick
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), min_size=2, max_size=60),
       st.lists(unit, min_size=16, max_size=16))
def test_no_attacker_that_sees_only_the_published_images_beats_the_exact_bound(pairs, scores_of_groups):
    keys_a, keys_b, labels = (np.array(c) for c in zip(*pairs))
    if labels.all() or not labels.any():
        labels[0] = not labels[0]
    bound = metrics.best_pair_auc(keys_a, keys_b, labels)
    any_attacker = np.array(scores_of_groups)[keys_a * 4 + keys_b]  # any score that depends on the pair's images only
    assert 0.5 - 1e-12 <= bound <= 1.0
    assert metrics.rank_auc(labels, any_attacker) <= bound + 1e-12
    assert metrics.best_pair_auc(np.zeros_like(keys_a), np.zeros_like(keys_b), labels) == 0.5


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).map(str.strip).filter(bool)
boxes = st.builds(tvpr.Box, names, st.integers(0, 10**6), st.integers(0, 10**4), st.integers(0, 4000),
                  st.integers(0, 4000), st.integers(1, 1000))


@quick
@given(st.lists(boxes, max_size=20))
def test_annotations_survive_a_write_and_read_round_trip(tmp_path_factory, written):
    path = tmp_path_factory.mktemp("csv") / "annotations.csv"
    tvpr.write_annotations(path, written)
    assert tvpr.read_annotations(path) == written  # names with commas, quotes and any script included


@quick
@given(st.text(max_size=300))
def test_any_text_parses_or_fails_with_a_message_naming_file_and_line(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("csv") / "annotations.csv"
    path.write_text(",".join(tvpr.ANNOTATION_COLUMNS) + "\n" + body, encoding="utf-8")
    try:
        result = tvpr.read_annotations(path)
    except tvpr.AnnotationError as err:
        assert str(path) in str(err) and ", line " in str(err)
    else:
        assert all(isinstance(b, tvpr.Box) and b.video for b in result)


small_images = st.integers(0, 2**31 - 1).map(lambda s: np.random.default_rng(s).random((2, 6, 5, 3), np.float32))


@quick
@given(small_images, st.integers(0, 2**31 - 1), st.floats(1e-2, 10.0), st.floats(-1.0, 1.0))
def test_the_colour_term_ignores_where_pixels_sit_and_the_contrast_term_ignores_scale(images, seed, scale, shift):
    from helpers import losses
    rng = np.random.default_rng(seed)
    flat = images.reshape(2, -1, 3)
    moved = np.stack([f[rng.permutation(len(f))] for f in flat]).reshape(images.shape)  # pixels rearranged
    assert float(losses.colour_invariance_loss(images, moved)) == pytest.approx(0.0, abs=1e-6)
    other = np.random.default_rng(seed + 1).random(images.shape, np.float32)
    gap = float(losses.colour_invariance_loss(images, other))
    assert 0.0 <= gap <= float(losses.invariance_loss(images, other)) * 3 ** 0.5 + 1e-6  # sliced W1 <= any matching
    turned = np.flip(np.flip(images, 1), 2)  # mirrored both ways: the same texture, the same colours
    assert float(losses.texture_invariance_loss(images, turned)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.invariance_term("colours+texture", images, turned)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.texture_invariance_loss(images, moved)) > 0  # same colours, other texture
    for kind in losses.INVARIANCE_OF:  # the same images, scaled and shifted together: the same relative gap
        term = lambda a, b, ref: float(losses.invariance_term(kind, a, b, "contrast", reference=ref))  # noqa: E731
        before = term(images, other, moved)
        after = term(shift + scale * images, shift + scale * other, shift + scale * moved)
        assert after == pytest.approx(before, rel=1e-3, abs=1e-4 * (1 + before))
