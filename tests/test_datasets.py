"""TVPR through helpers.datasets: profile sizes, scaled centres, heatmaps, flips, reproducible batches."""
import numpy as np
import pytest

from helpers import config, datasets, topview, tvpr


@pytest.fixture(scope="module")
def prepared_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tvpr_data")
    raw = root / "raw"
    topview.generate(raw, identities=20, videos=4, frame_size=(120, 160), seed=3, progress=False)
    tvpr.prepare(raw, datasets.tvpr_dir(root), seed=0, progress=False)
    return root


def test_tvpr_profiles_follow_the_thesis():
    paper = config.get_profile("paper", "tvpr")
    assert (paper.detector_size, paper.reid_size, paper.batch_size) == ((96, 128), 160, 12)
    assert (paper.epochs, paper.batches_per_epoch, paper.select_after) == (200, 52, 21)
    for name in config.PROFILES:
        p = config.get_profile(name, "tvpr")
        assert p.dataset == "tvpr" and all(s % 32 == 0 for s in p.detector_size)
    assert config.get_profile("cpu").dataset == "squares"
    assert config.unfiltered_name("squares") == "none" and config.unfiltered_name("tvpr") == "none_tvpr"
    with pytest.raises(KeyError, match="data set"):
        config.get_profile("cpu", "mnist")


def test_eval_sets_at_profile_sizes(prepared_root):
    profile = config.get_profile("smoke", "tvpr")
    sets = datasets.eval_sets(profile, data_dir=prepared_root)
    det, pairs = sets["test"]
    h, w = profile.detector_size
    assert det.images.shape[1:] == (h, w, 3) and det.images.dtype == np.float32
    assert 0 <= det.images.min() and det.images.max() <= 1
    assert det.heatmaps.shape[1:] == (h // 4, w // 4, 1)
    a, b = pairs.images(0, 5)
    assert a.shape == (5, profile.reid_size, profile.reid_size, 3)
    assert set(np.unique(pairs.labels)) == {0.0, 1.0}
    # every centre lies inside the image and its heatmap peaks near it
    for c, hm in zip(det.centres, det.heatmaps):
        assert len(c) >= 1 and np.all((c >= 0) & (c <= [w, h]))
        y, x = np.unravel_index(np.argmax(hm[..., 0]), hm.shape[:2])
        assert min(np.hypot(x - (cx / 4 - 0.5), y - (cy / 4 - 0.5)) for cx, cy in c) <= 1.0


def test_training_batches_are_reproducible_and_flipped_consistently(prepared_root):
    profile = config.get_profile("cpu", "tvpr")
    stream = datasets.TvprStream(profile, seed=0, data_dir=prepared_root)
    det, pairs = stream.batch(7)
    det2, pairs2 = stream.batch(7)
    assert np.array_equal(det.images, det2.images) and np.array_equal(pairs.labels, pairs2.labels)
    assert not np.array_equal(det.images, stream.batch(8)[0].images)
    assert len(det.images) == profile.batch_size and len(pairs) == profile.batch_size
    for c, hm in zip(det.centres, det.heatmaps):  # flipped targets still sit on the flipped centres
        y, x = np.unravel_index(np.argmax(hm[..., 0]), hm.shape[:2])
        assert min(np.hypot(x - (cx / 4 - 0.5), y - (cy / 4 - 0.5)) for cx, cy in c) <= 1.0
    a, b = pairs.images()
    assert a.shape == b.shape == (profile.batch_size, profile.reid_size, profile.reid_size, 3)


def test_missing_preparation_names_notebook_02(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 02"):
        datasets.eval_sets(config.get_profile("smoke", "tvpr"), data_dir=tmp_path)
