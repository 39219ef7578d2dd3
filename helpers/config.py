"""Variants (thesis Tables 4.1 and 4.2) and compute profiles, defined once as plain data."""
from __future__ import annotations

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

    def as_dict(self) -> dict:
        return asdict(self)


VARIANTS = {
    v.name: v
    for v in [
        Variant("S1", "squares", (5, 7, 7, 5, 3), 5e-4, 1),
        Variant("S2", "squares", (5, 7, 7, 5, 3), 5e-4, 2),
        Variant("S2c", "squares", (5, 7, 7, 5, 3), 5e-4, 2, privacy="confusion"),
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


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"Unknown variant {name!r}; choose one of {sorted(VARIANTS)}.")
    return VARIANTS[name]


def get_profile(name: str, **overrides) -> Profile:
    if name not in PROFILES:
        raise KeyError(f"Unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]


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
