"""``MODELS/report.md`` of ``hakuna train``: validation scores, and each column's loss against the class priors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from camtrap.labels import EMPTY
from camtrap.metric import per_class_log_loss

__all__ = ["write_report", "validation_scores"]


def validation_scores(paths: dict, models: Path, device: str | None = None) -> dict[str, pd.Series]:
    """Per-column log loss on the validation seasons: two-stage, class priors and (when trained) one-stage."""
    from camtrap.labels import COLUMNS
    from fusion import FusionModel

    val = paths["validation"]
    labels = val.labels
    two = pd.read_csv(models / "validation.csv", index_col="seq_id")
    fallback = FusionModel.load(paths["fusion"]).priors  # exactly the priors the package falls back to
    priors = pd.DataFrame([fallback] * len(labels), index=labels.index, columns=list(COLUMNS))
    out = {"two-stage": per_class_log_loss(two.loc[labels.index], labels),
           "class priors": per_class_log_loss(priors, labels)}  # fmt: skip
    if (models / "one_stage.pt").exists() and (models / "one_stage_blend.json").exists():
        from classifier.predict import load
        from hakuna.baselines import one_stage_submission

        blend = json.loads((models / "one_stage_blend.json").read_text())
        one = one_stage_submission(val, load(models / "one_stage.pt", device=device), fallback, blend=blend)
        out["one-stage"] = per_class_log_loss(one.loc[labels.index], labels)
    return out


def write_report(paths: dict, models: Path, cfg) -> str:
    """The report's Markdown."""
    val = paths["validation"]
    losses = validation_scores(paths, models, cfg.device)
    names = list(losses)
    seasons = ", ".join(str(int(s)) for s in sorted(val.frames["season"].dropna().unique()))
    lines = ["# Hakuna training report", "",
             f"Validation season(s) {seasons}: {len(val.labels)} sequences, {len(val.frames)} frames; trained on "
             f"{len(paths['train'].labels)} sequences.  Fusion (and the one-stage blend) are fitted on these same "
             "sequences, so these scores are optimistic; the test season is the judge.", "",
             f"Detector: `{paths['detector']}`; classifier: `{paths['classifier']}`; package: `{paths['zip']}`.", "",
             "| approach | metric (mean binary log loss) |", "|---|---|"]  # fmt: skip
    lines += [f"| {n} | {losses[n].mean():.5f} |" for n in names]
    present = [c for c in losses["two-stage"].index if c == EMPTY or val.labels[c].any()]
    lines += ["", "Per-class log loss (columns present in the validation seasons):", "",
              "| column | positives | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]  # fmt: skip
    for c in sorted(present, key=lambda c: -losses["class priors"][c]):
        lines.append(f"| {c} | {int(val.labels[c].sum())} | " + " | ".join(f"{losses[n][c]:.4f}" for n in names) + " |")
    return "\n".join(lines) + "\n"
