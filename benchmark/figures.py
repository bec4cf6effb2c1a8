"""Figures that claim tests attach to their verdicts (written under the run's figures/, linked from REPORT.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def attach(outcome, ctx, name: str, draw):
    """Draw a figure into the run's figures/ (draw(path)) and link it from the verdict; nothing without a run
    directory."""
    if ctx.run_dir is not None:
        draw(ctx.run_dir / "figures" / name)
        outcome.figures.append(f"figures/{name}")
    return outcome


def ratio_over_depth(ratios: np.ndarray, path: str | Path, title: str) -> Path:
    """Sink-to-random ratio per layer (items, layers): geometric mean with the 10-90% range of prompts."""
    plt = _pyplot()
    logs = np.log10(ratios)
    layers = np.arange(ratios.shape[1])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.fill_between(layers, 10 ** np.percentile(logs, 10, axis=0), 10 ** np.percentile(logs, 90, axis=0),
                    alpha=0.25, label="10-90% of prompts")
    ax.plot(layers, 10 ** logs.mean(axis=0), marker="o", label="geometric mean")
    ax.axvline((ratios.shape[1] - 1) / 2, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("attention layer (forward order)")
    ax.set_ylabel("sink-to-random ratio")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def token_budget(shares: Mapping[str, np.ndarray], path: str | Path, title: str) -> Path:
    """Share of attention per token type: mean over prompts with the 10-90% range."""
    plt = _pyplot()
    names = sorted(shares, key=lambda t: -float(np.mean(shares[t])))
    means = [float(np.mean(shares[t])) for t in names]
    low = [m - float(np.percentile(shares[t], 10)) for m, t in zip(means, names)]
    high = [float(np.percentile(shares[t], 90)) - m for m, t in zip(means, names)]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(names, means, yerr=[low, high], capsize=3)
    ax.set_ylabel("share of attention")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def layer_step_heatmap(values: np.ndarray, path: str | Path, title: str, label: str) -> Path:
    """A (layers, steps) map, e.g. MaxMass averaged over prompts (A01, A05)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    image = ax.imshow(values, aspect="auto", origin="lower", cmap="viridis")
    ax.set_xlabel("denoising step (0 = noisiest)")
    ax.set_ylabel("attention layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    return _save(fig, path)


__all__ = ["attach", "layer_step_heatmap", "ratio_over_depth", "token_budget"]
