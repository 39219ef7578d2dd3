"""Variants (thesis Tables 4.1 and 4.2) and compute profiles, defined once as plain data."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, asdict, replace
from pathlib import Path

LAMBDA = 5.0  # thesis Eq. 4


@dataclass(frozen=True)
class Variant:
    name: str
    dataset: str            # "squares" | "tvpr"
    kernels: tuple          # filters per conv layer; every kernel is 3x3 (thesis 4.1.4)
    filter_lr: float
    reid_steps: int         # ReID updates per detector update
    privacy: str = "thesis"  # "thesis": -BCE/lambda (Eq. 4) | "confusion": BCE(target 0.5)/lambda
    reid: str = "mobilenet"  # the co-trained ReID: the thesis's Siamese MobileNetV1 | "cnn" (models.build_cnn_reid)

    def as_dict(self) -> dict:
        return asdict(self)


VARIANTS = {
    v.name: v
    for v in [
        Variant("S1", "squares", (5, 7, 7, 5, 3), 5e-4, 1),
        Variant("S2", "squares", (5, 7, 7, 5, 3), 5e-4, 2),
        Variant("S2c", "squares", (5, 7, 7, 5, 3), 5e-4, 2, privacy="confusion"),
        # Not in the thesis: S2c against a small plain CNN ReID, the attacker notebook 06 found strongest.
        Variant("S3", "squares", (5, 7, 7, 5, 3), 5e-4, 2, privacy="confusion", reid="cnn"),
        Variant("R1", "tvpr", (5, 7, 7, 5, 3), 5e-4, 1),
        Variant("R2", "tvpr", (3, 3, 3, 3, 3), 5e-4, 1),
        Variant("R3", "tvpr", (3, 5, 5, 3, 3), 5e-4, 1),
        Variant("R4", "tvpr", (7, 9, 9, 7, 3), 5e-4, 1),
        Variant("R5", "tvpr", (5, 7, 7, 5, 3), 5e-3, 1),
        Variant("R6", "tvpr", (5, 7, 7, 5, 3), 1e-4, 1),
    ]
}

# Thesis learning rates (section 4.1) for the two networks the filter plays against.
LEARNING_RATES = {
    "squares": {"detector": 5e-4, "reid": 1e-3},
    "tvpr": {"detector": 1e-4, "reid": 1e-3},
}


@dataclass(frozen=True)
class Profile:
    name: str
    image_size: int          # squares detector images are image_size x image_size
    reid_size: int           # squares ReID images (solid colours, so their size carries no information)
    square_size: int
    alpha: float             # MobileNet width multiplier
    batch_size: int          # training batch (detector images = ReID pairs)
    eval_batch_size: int     # validation / test batch (thesis: 90)
    epochs: int              # adversarial epochs (notebook 04)
    batches_per_epoch: int
    select_after: int        # best version is chosen among epochs >= select_after (1-based)
    pretrain_steps: int      # unfiltered training of detector and ReID (notebook 03)
    val_identities: int      # ReID validation: identities x images each
    val_images_per_identity: int
    detector_val_images: int
    heatmap_sigma: float     # in heatmap pixels
    match_radius: float      # thesis 4.2.2: 4 px at 160x160 input (40x40 heatmap)
    bn_momentum: float       # see models.py: Keras's 0.999 lags far behind when training from scratch
    dataset: str = "squares"
    detector_size: tuple | None = None  # (height, width); squares: image_size x image_size
    pretrain_detector_lr: float | None = None  # notebook 03 only; None: the thesis rate


PROFILES = {
    # The thesis's sizes. For a GPU: one squares batch costs about 8 s on our 2-core CPU.
    "paper": Profile("paper", 160, 160, 20, 1.0, 60, 90, 12000, 12, 6001, 6000,
                     20, 6, 720, 2.0, 4.0, 0.99),
    # The same method scaled so a variant finishes in minutes on a 2-core laptop.
    "cpu": Profile("cpu", 64, 32, 8, 0.35, 60, 90, 20, 12, 11, 800,
                   20, 6, 720, 1.5, 2.0, 0.9),
    # Tiny, for tests: seconds.
    # Validation and test sets keep the thesis's counts: at 32x32 they cost next to nothing.
    "smoke": Profile("smoke", 32, 32, 4, 0.25, 20, 90, 3, 3, 2, 30,
                     20, 6, 720, 1.0, 1.0, 0.9),
}


# TVPR (thesis 3.2, 4.1.5): detector images 128x96, ReID crops 160x160, batch 12, 200 epochs of 52
# batches, best version after at least 20 epochs. The prepared data keep the thesis's sizes; a profile
# may shrink the ReID crops when it loads them. The thesis's detector rate (1e-4) was for an ImageNet
# backbone: from scratch at batch 12 it still predicted an empty heatmap after 750 steps (cpu sizes), so
# notebook 03 trains the TVPR detector without a filter at 1e-3; notebook 04 keeps the thesis's rate.
TVPR_SIZES = {
    "paper": dict(detector_size=(96, 128), reid_size=160, alpha=1.0, batch_size=12, eval_batch_size=12,
                  epochs=200, batches_per_epoch=52, select_after=21, pretrain_steps=10400,
                  heatmap_sigma=2.0, match_radius=4.0),
    "cpu": dict(detector_size=(96, 128), reid_size=64, alpha=0.35, batch_size=12, eval_batch_size=12,
                epochs=30, batches_per_epoch=26, select_after=11, pretrain_steps=1800,
                heatmap_sigma=2.0, match_radius=4.0, pretrain_detector_lr=1e-3),
    "smoke": dict(detector_size=(32, 64), reid_size=32, alpha=0.25, batch_size=6, eval_batch_size=12,
                  epochs=2, batches_per_epoch=2, select_after=2, pretrain_steps=10,
                  heatmap_sigma=1.0, match_radius=1.0, pretrain_detector_lr=1e-3),
}
DATASETS = ("squares", "tvpr")

# The offline stand-in for TVPR (helpers.topview) that notebook 02 generates when no TVPR folder is
# given: the thesis's 100 people in 23 videos at 640x480; the smoke profile draws fewer and smaller.
STANDIN = {
    "paper": dict(identities=100, videos=23, frame_size=(480, 640)),
    "cpu": dict(identities=100, videos=23, frame_size=(480, 640)),
    "smoke": dict(identities=20, videos=4, frame_size=(240, 320)),
}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"Unknown variant {name!r}; choose one of {sorted(VARIANTS)}.")
    return VARIANTS[name]


def get_profile(name: str, dataset: str = "squares", **overrides) -> Profile:
    """A profile's sizes for one data set; keyword overrides replace single fields."""
    if name not in PROFILES:
        raise KeyError(f"Unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    if dataset not in DATASETS:
        raise KeyError(f"Unknown data set {dataset!r}; choose one of {DATASETS}.")
    profile = PROFILES[name]
    if dataset == "tvpr":
        profile = replace(profile, dataset="tvpr", **TVPR_SIZES[name])
    return replace(profile, **overrides) if overrides else profile


def baseline_name(dataset: str) -> str:
    """results/<this>/ holds notebook 03's detector and ReID trained without a filter on `dataset`."""
    return "none" if dataset == "squares" else f"none_{dataset}"


def run_name(variant: str, seed: int = 0) -> str:
    """The results/ folder of one training run: the variant's name for seed 0, <name>_seed<k> otherwise."""
    return variant if int(seed) == 0 else f"{variant}_seed{int(seed)}"


def run_dir(variant: str, seed: int = 0) -> Path:
    return results_dir() / run_name(variant, seed)


def finished_run(variant: str, seed: int, profile: str, data_seed: int) -> dict | None:
    """The metrics.json of a finished run of notebook 04 with this profile, seed and data seed, else None."""
    path = run_dir(variant, seed) / "metrics.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    same = (m.get("profile"), m.get("seed"), m.get("data_seed", m.get("seed"))) == (profile, seed, data_seed)
    return m if same else None


# Notebook 06 (fresh attackers). Attackers train from scratch on transformed data for `reid_steps`
# batches and the fresh detector for `detector_steps`; both are validated every `eval_every` steps and
# the best validation step is kept. cpu sizes were chosen so that an attacker on unfiltered data has
# plainly converged (see the README), not to save the filter from a longer attack.
ATTACK = {
    "squares": {"paper": dict(reid_steps=2000, detector_steps=1000, eval_every=100),
                "cpu": dict(reid_steps=300, detector_steps=200, eval_every=50),
                "smoke": dict(reid_steps=2, detector_steps=2, eval_every=2)},
    "tvpr": {"paper": dict(reid_steps=5200, detector_steps=2600, eval_every=260),
             "cpu": dict(reid_steps=800, detector_steps=200, eval_every=100),
             "smoke": dict(reid_steps=2, detector_steps=2, eval_every=2)},
}

# Classic anonymisation baselines and their strengths, relative to the image so that one setting means
# the same at every profile's size: blur sigma and pixel-cell size are fractions of the image width.
BASELINES = {
    "none": {},
    "grey": {},                         # ITU-R BT.601 luma in all three channels
    "blur": {"sigma": 1 / 40},          # Gaussian, sigma = width / 40 (4 px at 160 px)
    "pixelate": {"cell": 1 / 16},       # 16 cells across the width, each its mean colour
    "noise": {"std": 0.2},              # additive Gaussian noise, clipped to [0, 1]
}


def default_profile() -> str:
    """The profile notebooks use unless told otherwise (tests set ANON_PROFILE=smoke)."""
    return os.environ.get("ANON_PROFILE", "cpu")


def project_root() -> Path:
    """Where data/ and results/ live: ANON_ROOT if set (tests use a temporary folder), else the repo."""
    env = os.environ.get("ANON_ROOT")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return project_root() / "data"


def results_dir() -> Path:
    return project_root() / "results"
