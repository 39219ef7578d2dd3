"""The synthetic squares data of thesis 3.1."""
import numpy as np
import pytest

from helpers import config, squares


@pytest.fixture(scope="module")
def batch(smoke_profile):
    return squares.TrainingStream(smoke_profile, seed=0).batch(0)


def test_detector_batch_shapes(batch, smoke_profile):
    det, pairs = batch
    s = smoke_profile.image_size
    n = smoke_profile.batch_size
    assert det.images.shape == (n, s, s, 3) and det.images.dtype == np.float32
    assert det.heatmaps.shape == (n, s // 4, s // 4, 1)
    assert 0.0 <= det.images.min() and det.images.max() <= 1.0
    a, b = pairs.images()
    assert a.shape == b.shape == (n, smoke_profile.reid_size, smoke_profile.reid_size, 3)


def test_square_always_inside_the_image():
    p = config.get_profile("cpu")
    rng = np.random.default_rng(0)
    det = squares.detector_set(rng, 500, p.image_size, p.square_size, p.heatmap_sigma)
    half = p.square_size / 2
    assert (det.centres >= half).all() and (det.centres <= p.image_size - half).all()
    for img, (x, y), ident in zip(det.images[:50], det.centres[:50], det.identity[:50]):
        x0, y0 = int(x - half), int(y - half)
        patch = img[y0:y0 + p.square_size, x0:x0 + p.square_size]
        assert np.allclose(patch, patch[0, 0])


def test_five_images_per_identity_same_square_colour():
    det = squares.detector_set(np.random.default_rng(1), 60, 32, 4, 1.0)
    assert set(np.bincount(det.identity)) == {5}
    for ident in range(12):
        imgs = det.images[det.identity == ident]
        centres = det.centres[det.identity == ident].astype(int)
        colours = [img[y, x] for img, (x, y) in zip(imgs, centres)]
        assert np.allclose(colours, colours[0])


def test_heatmap_peak_at_the_square_centre(batch):
    det, _ = batch
    for h, (x, y) in zip(det.heatmaps[..., 0], det.centres):
        py, px = np.unravel_index(np.argmax(h), h.shape)
        assert abs(px - (x / 4 - 0.5)) <= 0.5 and abs(py - (y / 4 - 0.5)) <= 0.5
        assert h.max() >= 0.5


def test_validation_sets_follow_the_thesis_counts():
    det, pairs = squares.fixed_sets(config.get_profile("cpu"), "val", 0)
    assert len(det.images) == 720 and set(np.bincount(det.identity)) == {5}
    assert len(pairs) == 720 and pairs.labels.sum() == 360
    same = pairs.labels == 1
    assert (pairs.ids_a[same] == pairs.ids_b[same]).all()
    assert (pairs.ids_a[~same] != pairs.ids_b[~same]).all()
    assert len(set(pairs.ids_a) | set(pairs.ids_b)) == 20


def test_fixed_sets_are_reproducible_and_splits_differ(smoke_profile):
    d1, p1 = squares.fixed_sets(smoke_profile, "val", 0)
    d2, p2 = squares.fixed_sets(smoke_profile, "val", 0)
    d3, p3 = squares.fixed_sets(smoke_profile, "test", 0)
    assert np.array_equal(d1.images, d2.images) and np.array_equal(p1.colours_a, p2.colours_a)
    assert not np.array_equal(d1.images, d3.images)
    assert not np.array_equal(squares.fixed_sets(smoke_profile, "val", 1)[1].colours_a, p1.colours_a)


def test_training_stream_is_fresh_per_batch_and_reproducible(smoke_profile):
    stream = squares.TrainingStream(smoke_profile, seed=0)
    assert np.array_equal(stream.batch(3)[0].images, squares.TrainingStream(smoke_profile, 0).batch(3)[0].images)
    assert not np.array_equal(stream.batch(3)[0].images, stream.batch(4)[0].images)
    labels = stream.batch(5)[1].labels
    assert labels.sum() == len(labels) // 2


def test_save_and_load_round_trip(tmp_path, smoke_profile):
    sets = {"val": squares.fixed_sets(smoke_profile, "val", 0)}
    path = tmp_path / "sets.npz"
    squares.save_sets(path, sets)
    det, pairs = squares.load_sets(path)["val"]
    assert np.array_equal(det.images, sets["val"][0].images)
    assert np.array_equal(pairs.labels, sets["val"][1].labels) and pairs.size == smoke_profile.image_size


def test_missing_sets_name_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_synthetic_squares"):
        squares.load_sets(tmp_path / "nope.npz")


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="multiple of 5"):
        squares.detector_set(np.random.default_rng(0), 7, 32, 4, 1.0)
    with pytest.raises(ValueError, match="square_size"):
        squares.detector_set(np.random.default_rng(0), 5, 32, 40, 1.0)
