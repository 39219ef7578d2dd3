"""Figures shared by the notebooks; each is also written to results/ as a small PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

DPI = 80


def save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def image_grid(images, titles=None, ncols: int = 6, size: float = 1.6, suptitle: str | None = None):
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.clip(img, 0, 1), vmin=0, vmax=1, cmap="gray" if np.ndim(img) == 2 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def heatmap_overlay(image, heatmap, ax=None, title: str | None = None):
    """The image with its (upsampled) heatmap drawn on top."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    h, w = image.shape[:2]
    ax.imshow(np.clip(image, 0, 1))
    ax.imshow(np.squeeze(heatmap), cmap="magma", alpha=0.55, extent=(0, w, h, 0), vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def history_curves(history: list, keys, title: str = "", ax=None):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    epochs = [h["epoch"] for h in history]
    for k in keys:
        ax.plot(epochs, [h.get(k, np.nan) for h in history], label=k)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def ideal_point_plot(points: dict, unfiltered_ap: float, title: str, ax=None):
    """Figures 5.1/5.2: each filter's (ReID AUC, detector AP) and the ideal point (0.5, unfiltered AP)."""
    import seaborn as sns
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    names = list(points)
    xs = [points[n][0] for n in names]
    ys = [points[n][1] for n in names]
    sns.scatterplot(x=xs, y=ys, hue=names, s=70, ax=ax)
    for n, x, y in zip(names, xs, ys):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.scatter([0.5], [unfiltered_ap], marker="D", s=80, color="k", label="ideal")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("ReID AUC-ROC")
    ax.set_ylabel("detector AP")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    return ax


def pareto_front(points: dict) -> list:
    """Names of the points no other point beats on both axes: closer to AUC 0.5 and higher AP."""
    def beats(p, q):
        dp, dq = abs(p["auc"] - 0.5), abs(q["auc"] - 0.5)
        return dp <= dq and p["ap"] >= q["ap"] and (dp < dq or p["ap"] > q["ap"])
    return [n for n, q in points.items() if not any(beats(p, q) for m, p in points.items() if m != n)]


def pareto_plot(points: dict, ideal: tuple, title: str, ax=None):
    """Privacy against utility: per transform {auc, auc_std, ap, ap_std, kind} (mean and spread over
    seeds), the ideal point and the Pareto front."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.3))
    style = {"classic": dict(marker="s", color="tab:grey"), "filter": dict(marker="o", color="tab:blue")}
    for name, p in points.items():
        ax.errorbar(p["auc"], p["ap"], xerr=p.get("auc_std", 0), yerr=p.get("ap_std", 0), ms=7, capsize=2,
                    lw=1, ls="none", **style[p["kind"]])
        ax.annotate(name, (p["auc"], p["ap"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = sorted(pareto_front(points), key=lambda n: abs(points[n]["auc"] - 0.5))
    ax.plot([points[n]["auc"] for n in front], [points[n]["ap"] for n in front], ":", color="tab:orange",
            label="Pareto front")
    ax.scatter([ideal[0]], [ideal[1]], marker="*", s=160, color="k", label="ideal", zorder=3)
    for kind, s in style.items():
        ax.scatter([], [], label=kind, **s)
    ax.set_xlim(0.3, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("fresh attacker AUC (strongest attacker)")
    ax.set_ylabel("fresh detector AP")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    return ax
