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


def _wrap(title: str, width: int = 70) -> str:
    """Long titles on several lines, so that none is cut at the figure's edge."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width))


def attach(outcome, ctx, name: str, draw):
    """Draw a figure into the run's figures/ (draw(path)) and link it from the verdict; nothing without a run
    directory."""
    if ctx.run_dir is not None:
        draw(ctx.run_dir / "figures" / name)
        outcome.figures.append(f"figures/{name}")
    return outcome


def ratio_over_depth(ratios: np.ndarray, path: str | Path, title: str, ylabel: str = "sink-to-random ratio") -> Path:
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
    ax.set_ylabel(ylabel)
    ax.set_title(_wrap(title), fontsize=9)
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


__all__ = ["accuracy_under_masking", "attach", "layer_step_heatmap", "ratio_over_depth", "sink_positions", "token_budget"]


def dose_response(levels: list[str], deltas: Mapping[str, list[tuple[float, float, float]]], path: str | Path,
                  title: str, margins: Mapping[str, float] | None = None) -> Path:
    """Mean delta with its 95% CI per level, one panel per metric (A16/A17): deltas[metric] = [(mean, lo, hi)]
    in the order of `levels`; the dashed band is the equivalence margin."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(deltas), figsize=(4.2 * len(deltas), 3.2), squeeze=False)
    for ax, (metric, rows) in zip(axes[0], deltas.items()):
        x = np.arange(len(levels))
        mean = np.array([r[0] for r in rows])
        err = np.array([[r[0] - r[1] for r in rows], [r[2] - r[0] for r in rows]])
        ax.errorbar(x, mean, yerr=err, fmt="o-", capsize=4)
        ax.axhline(0, color="black", lw=0.8)
        margin = (margins or {}).get(metric)
        if margin:
            ax.axhspan(-margin, margin, color="green", alpha=0.12, label=f"margin +-{margin:g}")
            ax.legend(fontsize=8)
        ax.set_xticks(x, levels, rotation=30, fontsize=8)
        ax.set_ylabel(f"delta {metric} (condition - baseline)")
    fig.suptitle(_wrap(title, 40 * len(deltas)), fontsize=9)
    return _save(fig, path)


def image_panels(rows: list[tuple[str, list[np.ndarray]]], columns: list[str], path: str | Path, title: str) -> Path:
    """A grid of images: one row per prompt (label, images in `columns` order), e.g. baseline | sink-removed |
    random-removed (A21). Small images are shown with nearest-neighbour upscaling."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.9 * len(columns), 1.9 * len(rows) + 0.5),
                             squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            frame = image[0] if image.ndim == 4 else image       # videos: the first frame
            ax.imshow(frame, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label[:28], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def sink_positions(panels: Mapping[str, tuple[list[np.ndarray], int | None]], path: str | Path, title: str,
                   per_panel: int = 8) -> Path:
    """Paper C's sink dynamics: the top-1 sink position (of the attention averaged over layers) at each step,
    one line per problem (the first `per_panel`), one panel per model (DLM: denoising steps, ARM: decoding steps).
    panels[label] = (positions per problem, the prompt length of the first problem or None)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.3), squeeze=False)
    for ax, (label, (positions, prompt_length)) in zip(axes[0], panels.items()):
        for i, p in enumerate(positions[:per_panel]):
            ax.plot(np.arange(len(p)), p, marker="o", ms=3, lw=1, alpha=0.8, label=f"problem {i}")
        if prompt_length is not None:
            ax.axhline(prompt_length - 0.5, color="grey", lw=0.8, ls="--", label="prompt | generation")
        ax.set_xlabel("step")
        ax.set_ylabel("top-1 sink position")
        ax.set_title(_wrap(label, 45), fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(_wrap(title, 55 * len(panels)), fontsize=9)
    return _save(fig, path)


def accuracy_under_masking(models: Mapping[str, Mapping[str, tuple[float, float, float]]], path: str | Path,
                           title: str) -> Path:
    """Accuracy with its 95% interval per condition (unmasked, top-1/5/10 sinks masked), one line per model:
    models[label][condition] = (accuracy, lo, hi)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for label, rows in models.items():
        names = list(rows)
        x = np.arange(len(names))
        acc = np.array([rows[c][0] for c in names])
        err = np.array([[rows[c][0] - rows[c][1] for c in names], [rows[c][2] - rows[c][0] for c in names]])
        ax.errorbar(x, acc, yerr=err, fmt="o-", capsize=4, label=label)
        ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title(_wrap(title), fontsize=9)
    return _save(fig, path)
