"""One interface to the data the notebooks train and evaluate on: squares (notebook 01) and TVPR (02).

Both give detector sets (images in [0, 1], centres, heatmap targets) and pair sets with `.images(start,
stop)` and `.labels`, at the sizes of a profile (`config.get_profile(name, dataset)`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from helpers import config, squares, tvpr


def tvpr_dir(data_dir=None) -> Path:
    """data/tvpr/: the arrays notebook 02 prepared (from TVPR or the offline stand-in)."""
    return Path(data_dir if data_dir is not None else config.data_dir()) / "tvpr"


@dataclass
class CropPairs:
    """ReID pairs that index into one array of crops, as squares.PairSet does with colours."""
    crops: np.ndarray   # (M, S, S, 3) float32 in [0, 1]
    index_a: np.ndarray
    index_b: np.ndarray
    labels: np.ndarray  # (P,) float32, 1 same person, 0 different

    def images(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(start, stop)
        return self.crops[self.index_a[sl]], self.crops[self.index_b[sl]]

    def __len__(self) -> int:
        return len(self.labels)


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 or float images to float32 in [0, 1] at height x width (area averaging when shrinking)."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    if images.shape[1:3] != (height, width):
        images = np.stack([tvpr.resize(img, height, width) for img in images])
    return images.astype(np.float32) / scale


def tvpr_detector_set(det: tvpr.DetectorImages, profile) -> squares.DetectorSet:
    """TVPR detector images at the profile's size; centres is a list of (k, 2) arrays (k people)."""
    h, w = profile.detector_size
    sy, sx = h / det.images.shape[1], w / det.images.shape[2]
    scaled = replace(det, images=resize_images(det.images, h, w),
                     centres=det.centres * np.array([sx, sy], np.float32))  # NaN padding stays NaN
    centres = [scaled.centres[i, :det.counts[i]] for i in range(len(det))]
    heatmaps = tvpr.heatmap_targets(scaled, profile.heatmap_sigma)
    images = scaled.images
    identity = np.array([det.identity[i, 0] for i in range(len(det))])
    return squares.DetectorSet(images, centres, identity, heatmaps)


def tvpr_pairs(crops: tvpr.ReidCrops, pairs: tvpr.Pairs, profile) -> CropPairs:
    size = profile.reid_size
    return CropPairs(resize_images(crops.images, size, size), pairs.index_a, pairs.index_b,
                     pairs.label.astype(np.float32))


def tvpr_source(data_dir=None) -> Path | None:
    """The raw folder data/tvpr/ was prepared from (its manifest says), or None if missing or unreadable."""
    manifest = tvpr_dir(data_dir) / tvpr.MANIFEST_FILE
    try:
        return Path(json.loads(manifest.read_text())["source"]["raw_root"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def standin_name(profile_name: str, seed: int) -> str:
    """The folder under data/topview_raw/ that notebook 02 draws the stand-in of this profile and seed in."""
    return f"{profile_name}_seed{seed}"


def check_tvpr_source(profile_name: str, seed: int, data_dir=None) -> None:
    """Refuse data/tvpr/ prepared from the stand-in of another profile or data seed (notebook 02 replaces
    data/tvpr/ whole, so a run of another profile leaves data that look valid but are not this run's)."""
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    source = tvpr_source(data_dir)  # None: tvpr.load_prepared says what to do
    if source is not None and source.parent.name == "topview_raw" and source.name != standin_name(profile_name, seed):
        raise ValueError(f"{tvpr_dir(data_dir)} holds the TVPR stand-in {source.name}, not "
                         f"{standin_name(profile_name, seed)}: run notebooks/02_prepare_tvpr.ipynb with "
                         f"PROFILE={profile_name!r} and DATA_SEED={seed} (python -m helpers.batch does it), or keep "
                         "each profile apart with ANON_ROOT.")


def eval_sets(profile, seed: int = 0, data_dir=None) -> dict:
    """{"val": (detector set, pairs), "test": (...)} of profile.dataset, read from data/."""
    data_dir = data_dir if data_dir is not None else config.data_dir()
    if profile.dataset == "squares":
        path = squares.sets_path(data_dir, profile.name, seed)
        sets = squares.load_sets(path)
        if not {"val", "test"} <= set(sets):
            raise ValueError(f"{path} holds the splits {sorted(sets)}, not val and test (an older version?): delete "
                             f"it and {squares.RUN_01}.")
        return {s: sets[s] for s in ("val", "test")}
    check_tvpr_source(profile.name, seed, data_dir)
    prepared = tvpr.load_prepared(tvpr_dir(data_dir))
    return {s: (tvpr_detector_set(prepared.detector[s], profile),
                tvpr_pairs(prepared.reid[s], prepared.pairs[s], profile)) for s in ("val", "test")}


SELECTION_SEED = 7919  # a second squares validation draw comes from data seed + this


def selection_pairs(profile, seed: int = 0, data_dir=None, val=None) -> list:
    """Validation pair sets the fresh selection attacker of notebook 04 is scored on: the validation
    pairs (`val`, if already loaded), and on squares a second validation draw with other colours (a
    filter can map the 20 validation colours to one image and still leave others apart). Never the test set."""
    if val is None:
        val = eval_sets(profile, seed, data_dir)["val"][1]
    if profile.dataset != "squares":
        return [val]
    return [val, squares.fixed_sets(profile, "val", seed + SELECTION_SEED)[1]]


EXACT_SEED = 104729  # the large squares pair draw of exact_pairs comes from data seed + this


def exact_pairs(profile, split: str, seed: int = 0, identities: int | None = None):
    """Squares: a large pair draw (config.EXACT_IDENTITIES identities, the profile's images each) from
    the validation ('val', for choices) or test ('test', for reports) stream, for attackers.exact_attack_auc:
    20 identities cannot show a filter that maps most colours, but not all, to one image."""
    if profile.dataset != "squares":
        raise ValueError(f"Exact attacker figures need solid-colour squares pairs, not {profile.dataset!r}.")
    rng = squares.rng_for(split, seed + EXACT_SEED)
    return squares.fixed_pairs(rng, identities or config.EXACT_IDENTITIES, profile.val_images_per_identity,
                               profile.reid_size)


def _flip(images, axis_y: np.ndarray, axis_x: np.ndarray):
    out = images.copy()
    out[axis_y] = out[axis_y, ::-1]
    out[axis_x] = out[axis_x, :, ::-1]
    return out


class TvprStream:
    """Training batches drawn from the prepared TVPR training split, reproducible from (seed, step).

    Each batch: batch_size detector images and batch_size pairs, drawn without replacement. Seen from
    straight above a person has no "up", so detector images are flipped vertically and/or horizontally
    at random, and each square ReID crop is turned to one of its 8 orientations (the thesis does not say
    it augmented; with 420 training images, we do)."""

    def __init__(self, profile, seed: int = 0, data_dir=None):
        prepared = tvpr.load_prepared(tvpr_dir(data_dir if data_dir is not None else config.data_dir()))
        self.profile, self.seed = profile, seed
        self.det = tvpr_detector_set(prepared.detector["train"], profile)
        self.pairs = tvpr_pairs(prepared.reid["train"], prepared.pairs["train"], profile)

    def batch(self, step: int) -> tuple[squares.DetectorSet, CropPairs]:
        n = self.profile.batch_size
        rng = np.random.default_rng([self.seed, squares.SPLIT_SEEDS["train"], step])
        pick = rng.choice(len(self.det.images), size=min(n, len(self.det.images)), replace=False)
        fy, fx = rng.random(len(pick)) < 0.5, rng.random(len(pick)) < 0.5
        h, w = self.det.images.shape[1:3]
        centres = []
        for i, j in enumerate(pick):
            c = self.det.centres[j].copy()
            c[:, 1] = np.where(fy[i], h - c[:, 1], c[:, 1])
            c[:, 0] = np.where(fx[i], w - c[:, 0], c[:, 0])
            centres.append(c)
        det = squares.DetectorSet(_flip(self.det.images[pick], fy, fx), centres, self.det.identity[pick],
                                  _flip(self.det.heatmaps[pick], fy, fx))
        chosen = rng.choice(len(self.pairs), size=min(n, len(self.pairs)), replace=False)
        a, b = self.pairs.crops[self.pairs.index_a[chosen]], self.pairs.crops[self.pairs.index_b[chosen]]
        crops = np.concatenate([_turn(a, rng), _turn(b, rng)])
        k = len(chosen)
        return det, CropPairs(crops, np.arange(k), np.arange(k, 2 * k), self.pairs.labels[chosen])


def _turn(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Square crops seen from above, each in one of its 8 orientations (quarter turns and a mirror)."""
    crops = _flip(crops, rng.random(len(crops)) < 0.5, np.zeros(len(crops), bool))
    return np.stack([np.rot90(c, k) for c, k in zip(crops, rng.integers(0, 4, len(crops)))])


def training_stream(profile, seed: int = 0, data_dir=None):
    """Fresh squares every batch, or batches drawn from the prepared TVPR training split."""
    if profile.dataset == "squares":
        return squares.TrainingStream(profile, seed)
    return TvprStream(profile, seed, data_dir)
