"""The ablation report: a Markdown table and matplotlib plots (per-class loss, reliability of ``empty``, ROC)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.labels import EMPTY

__all__ = ["ablation_markdown", "ablation_plots", "ablation_table"]


def ablation_table(rows) -> str:
    """The rows as a Markdown table."""
    lines = ["| approach | metric | empty log loss | empty ROC AUC | images/s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.description} | {r.score:.5f} | {r.empty_loss:.5f} | {r.empty_auc:.4f} | "
                     f"{r.images_per_s:.1f} |")  # fmt: skip
    return "\n".join(lines)


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="mergesort")
    y = y[order]
    tpr = np.concatenate([[0], np.cumsum(y) / max(y.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(~y) / max((~y).sum(), 1)])
    return fpr, tpr


def ablation_plots(out: Path, rows, preds: dict[str, pd.DataFrame], labels: pd.DataFrame) -> list[str]:
    """Write the three plots as PNGs under ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [c for c in labels.columns if labels[c].any()]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        ax.bar(np.arange(len(present)) + i * width, [r.per_class[c] for c in present], width, label=r.name)
    ax.set_xticks(np.arange(len(present)) + 0.4 - width / 2, present, rotation=45, ha="right")
    ax.set_ylabel("log loss")
    ax.set_title("Per-class log loss (classes present in the evaluation season)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "per_class_loss.png", dpi=110)
    plt.close(fig)
    y = labels[EMPTY].to_numpy() == 1
    fig, (rel, roc) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 11)
    for name, pred in preds.items():
        p = pred.loc[labels.index, EMPTY].to_numpy()
        idx = np.clip(np.digitize(p, bins) - 1, 0, 9)
        filled = [b for b in range(10) if (idx == b).any()]
        rel.plot([p[idx == b].mean() for b in filled], [y[idx == b].mean() for b in filled], "o-", label=name)
        roc.plot(*_roc(y, p), label=name)
    rel.plot([0, 1], [0, 1], "k:", lw=1)
    rel.set(xlabel="predicted P(empty)", ylabel="observed empty rate", title="Reliability of empty")
    roc.plot([0, 1], [0, 1], "k:", lw=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="Empty ROC")
    rel.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "empty_calibration.png", dpi=110)
    plt.close(fig)
    return ["per_class_loss.png", "empty_calibration.png"]


def ablation_markdown(rows, config: dict, plots: list[str]) -> str:
    """The whole report."""
    intro = (f"{config['test_sequences']} evaluation sequences (the unseen season); models trained on "
             f"{config['train_sequences']} sequences of the training seasons.")
    parts = ["# One-stage vs two-stage ablation", "", intro, "", ablation_table(rows), ""]
    parts += [f"![{p}]({p})" for p in plots]
    parts += ["", "## Configuration and model hashes", "", "```json", json.dumps(config, indent=1, default=str), "```"]
    return "\n".join(parts) + "\n"
