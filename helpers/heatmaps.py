"""Heatmap targets from object centres, and the thesis's peak masks (section 4.2.2)."""
from __future__ import annotations

import numpy as np

STRIDE = 4  # the detector's heatmap is 1/4 of the input in width and height (thesis 4.1.1)


def to_heatmap_coords(centres_px: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Map continuous image coordinates (x, y) to heatmap pixel indices (pixel i covers [s*i, s*i+s))."""
    return np.asarray(centres_px, dtype=np.float32) / stride - 0.5


def gaussian_heatmaps(centres: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """One Gaussian bump (peak 1 at the centre) per image; centres are (N, 2) heatmap (x, y)."""
    centres = np.asarray(centres, dtype=np.float32).reshape(-1, 2)
    ys = np.arange(height, dtype=np.float32)[None, :, None]
    xs = np.arange(width, dtype=np.float32)[None, None, :]
    d2 = (xs - centres[:, 0, None, None]) ** 2 + (ys - centres[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2.0 * sigma**2))[..., None].astype(np.float32)


def _maxpool3(h: np.ndarray) -> np.ndarray:
    """3x3 max-pool, stride 1, 'same' padding, over the last two axes."""
    padded = np.pad(h, [(0, 0)] * (h.ndim - 2) + [(1, 1), (1, 1)], constant_values=-np.inf)
    rows, cols = h.shape[-2:]
    out = np.full(h.shape, -np.inf, dtype=h.dtype)
    for dy in range(3):
        for dx in range(3):
            out = np.maximum(out, padded[..., dy:dy + rows, dx:dx + cols])
    return out


def peaks(heatmaps: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean map of local maxima (equal to their 3x3 max-pool) that reach the threshold."""
    h = as_maps(heatmaps)
    return (h == _maxpool3(h)) & (h >= threshold)


def peak_masks(heatmaps: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The thesis's mask: every peak and its 8 neighbours marked (section 4.2.2)."""
    p = peaks(heatmaps, threshold).astype(np.float32)
    return _maxpool3(p) > 0


def as_maps(h: np.ndarray) -> np.ndarray:
    """Heatmaps as (N, H, W), accepting (N, H, W, 1)."""
    h = np.asarray(h, dtype=np.float32)
    if h.ndim == 4:
        if h.shape[-1] != 1:
            raise ValueError(f"Expected heatmaps with one channel, got shape {h.shape}.")
        h = h[..., 0]
    if h.ndim != 3:
        raise ValueError(f"Expected heatmaps of shape (N, H, W) or (N, H, W, 1), got {h.shape}.")
    return h
