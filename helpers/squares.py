"""The synthetic squares data set of thesis section 3.1, scaled by the profile."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.heatmaps import STRIDE, gaussian_heatmaps, to_heatmap_coords

IMAGES_PER_DETECTOR_IDENTITY = 5  # thesis 3.1: five images per square colour
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


@dataclass
class DetectorSet:
    images: np.ndarray    # (N, S, S, 3) float32 in [0, 1]
    centres: np.ndarray   # (N, 2) square centres (x, y) in image pixels
    identity: np.ndarray  # (N,) square-colour id
    heatmaps: np.ndarray  # (N, S/4, S/4, 1) targets


@dataclass
class PairSet:
    colours_a: np.ndarray  # (N, 3): ReID images are solid colours, stored as one colour each
    colours_b: np.ndarray
    ids_a: np.ndarray
    ids_b: np.ndarray
    labels: np.ndarray     # (N,) 1.0 same identity, 0.0 different
    size: int

    def images(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Expand a slice of the pairs to full solid-colour images."""
        sl = slice(start, stop)
        return solid_images(self.colours_a[sl], self.size), solid_images(self.colours_b[sl], self.size)

    def __len__(self) -> int:
        return len(self.labels)


def rng_for(split: str, seed: int) -> np.random.Generator:
    """Independent streams for train, validation and test, all reproducible from one seed."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"Unknown split {split!r}; use one of {sorted(SPLIT_SEEDS)}.")
    return np.random.default_rng([seed, SPLIT_SEEDS[split]])


def solid_images(colours: np.ndarray, size: int) -> np.ndarray:
    colours = np.asarray(colours, dtype=np.float32)
    return np.broadcast_to(colours[:, None, None, :], (len(colours), size, size, 3)).copy()


def detector_set(rng: np.random.Generator, n_images: int, image_size: int, square_size: int,
                 sigma: float) -> DetectorSet:
    """n_images detector images, five per square colour; every square lies fully inside its image."""
    if n_images % IMAGES_PER_DETECTOR_IDENTITY:
        raise ValueError(f"n_images={n_images} must be a multiple of {IMAGES_PER_DETECTOR_IDENTITY}.")
    if not 0 < square_size < image_size:
        raise ValueError(f"square_size={square_size} must be between 1 and image_size={image_size}.")
    n_ids = n_images // IMAGES_PER_DETECTOR_IDENTITY
    square_colours = rng.random((n_ids, 3), dtype=np.float32)
    identity = np.repeat(np.arange(n_ids), IMAGES_PER_DETECTOR_IDENTITY)
    background = rng.random((n_images, 3), dtype=np.float32)
    corners = rng.integers(0, image_size - square_size + 1, size=(n_images, 2))  # (x, y)
    images = np.broadcast_to(background[:, None, None, :], (n_images, image_size, image_size, 3)).copy()
    for i, (x, y) in enumerate(corners):
        images[i, y:y + square_size, x:x + square_size] = square_colours[identity[i]]
    centres = corners.astype(np.float32) + square_size / 2.0
    side = image_size // STRIDE
    heatmaps = gaussian_heatmaps(to_heatmap_coords(centres), side, side, sigma)
    return DetectorSet(images, centres, identity, heatmaps)


def training_pairs(rng: np.random.Generator, n_pairs: int, image_size: int) -> PairSet:
    """A fresh batch of pairs, half same identity, half different, in random order."""
    n_same = n_pairs // 2
    colours = rng.random((n_pairs + (n_pairs - n_same), 3), dtype=np.float32)
    a = colours[:n_pairs]
    b = np.concatenate([a[:n_same], colours[n_pairs:]])
    ids_a = np.arange(n_pairs)
    ids_b = np.concatenate([ids_a[:n_same], np.arange(n_pairs, n_pairs + n_pairs - n_same)])
    labels = (np.arange(n_pairs) < n_same).astype(np.float32)
    order = rng.permutation(n_pairs)
    return PairSet(a[order], b[order], ids_a[order], ids_b[order], labels[order], image_size)


def fixed_pairs(rng: np.random.Generator, n_identities: int, images_per_identity: int,
                image_size: int) -> PairSet:
    """Validation/test pairs as in thesis 3.1 (20 identities x 6 images -> 360 pairs -> 720).

    Three pairs per image, half with both images of one identity (spread evenly over the
    identities), half of two identities; the augmentation adds every pair in swapped order.
    """
    k = images_per_identity
    n_pairs = 3 * n_identities * k
    n_same = n_pairs // 2
    per_id = n_same // n_identities
    combos = [(i, j) for i in range(k) for j in range(i + 1, k)]
    if per_id > len(combos):
        raise ValueError(f"{k} images per identity give only {len(combos)} same pairs, need {per_id}.")
    colours = rng.random((n_identities, 3), dtype=np.float32)
    same = []
    for ident in range(n_identities):
        # Which two of the identity's images form each pair. Images of one identity are the same
        # solid colour, so only the count matters here; the draw keeps the sets' random stream.
        chosen = rng.choice(len(combos), size=per_id, replace=False)
        same += [(ident, ident)] * len(chosen)
    diff = []
    while len(diff) < n_pairs - len(same):
        a, b = rng.integers(0, n_identities, size=2)
        if a != b:
            diff.append((a, b))
    pairs = np.array(same + diff)
    labels = np.r_[np.ones(len(same)), np.zeros(len(diff))].astype(np.float32)
    # Augmentation: each pair is also shown in the opposite order (the ReID is symmetric only
    # through training, not by construction of the dense head's input order).
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    labels = np.concatenate([labels, labels])
    order = rng.permutation(len(labels))
    pairs, labels = pairs[order], labels[order]
    return PairSet(colours[pairs[:, 0]], colours[pairs[:, 1]], pairs[:, 0], pairs[:, 1], labels, image_size)


def fixed_sets(profile, split: str, seed: int = 0) -> tuple[DetectorSet, PairSet]:
    """The fixed validation or test data (thesis 3.1: test made exactly like validation)."""
    if split not in ("val", "test"):
        raise ValueError(f"Fixed sets exist for 'val' and 'test', not {split!r}.")
    rng = rng_for(split, seed)
    det = detector_set(rng, profile.detector_val_images, profile.image_size, profile.square_size,
                       profile.heatmap_sigma)
    pairs = fixed_pairs(rng, profile.val_identities, profile.val_images_per_identity, profile.reid_size)
    return det, pairs


class TrainingStream:
    """Fresh detector images and ReID pairs for every batch (thesis 3.1), reproducible from a seed.

    The stream's position is a plain integer so a resumed run continues with the same batches.
    """

    def __init__(self, profile, seed: int = 0):
        self.profile = profile
        self.seed = seed

    def batch(self, step: int) -> tuple[DetectorSet, PairSet]:
        p = self.profile
        rng = np.random.default_rng([self.seed, SPLIT_SEEDS["train"], step])
        n_det = (p.batch_size // IMAGES_PER_DETECTOR_IDENTITY) * IMAGES_PER_DETECTOR_IDENTITY
        det = detector_set(rng, n_det, p.image_size, p.square_size, p.heatmap_sigma)
        return det, training_pairs(rng, p.batch_size, p.reid_size)


def sets_path(data_dir, profile_name: str, seed: int):
    return Path(data_dir) / "squares" / f"{profile_name}_seed{seed}.npz"


def save_sets(path, sets: dict) -> None:
    """Write {split: (DetectorSet, PairSet)} to one .npz file (notebook 01 -> later notebooks)."""
    arrays = {}
    for split, (det, pairs) in sets.items():
        for k, v in det.__dict__.items():
            arrays[f"{split}/det/{k}"] = v
        for k, v in pairs.__dict__.items():
            arrays[f"{split}/pairs/{k}"] = np.asarray(v)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


DET_FIELDS = ("images", "centres", "identity", "heatmaps")
PAIR_FIELDS = ("colours_a", "colours_b", "ids_a", "ids_b", "labels", "size")
RUN_01 = "run notebooks/01_synthetic_squares.ipynb with the same PROFILE and DATA_SEED (python -m helpers.batch does it)"


def load_sets(path) -> dict:
    """Read what save_sets wrote; a clear message if notebook 01 has not been run or the file is damaged
    or from an older version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {RUN_01}.")
    try:
        with np.load(path) as z:
            splits = sorted({k.split("/")[0] for k in z.files})
            out = {}
            for split in splits:
                det = DetectorSet(**{f: z[f"{split}/det/{f}"] for f in DET_FIELDS})
                pairs = PairSet(**{f: z[f"{split}/pairs/{f}"] for f in PAIR_FIELDS[:-1]},
                                size=int(z[f"{split}/pairs/size"]))
                out[split] = (det, pairs)
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is damaged or from an older version ({type(err).__name__}: {err}): delete it "
                         f"and {RUN_01}.") from None
    return out
