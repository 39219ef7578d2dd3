"""Input sizes per data set and profile (squares: thesis 3.1; TVPR: 128x96 detector, 160x160 crops)."""


def detector_shape(profile, dataset: str) -> tuple:
    if dataset == "squares":
        return (profile.image_size, profile.image_size, 3)
    if dataset == "tvpr":
        return (*profile.detector_size, 3)
    raise ValueError(f"Unknown data set {dataset!r}.")


def reid_shape(profile, dataset: str) -> tuple:
    if dataset in ("squares", "tvpr"):
        return (profile.reid_size, profile.reid_size, 3)
    raise ValueError(f"Unknown data set {dataset!r}.")
