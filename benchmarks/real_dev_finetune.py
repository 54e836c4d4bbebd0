"""Fine-tuning the pretrained default vs the same architecture from scratch, on ../shared/data/real-dev.

The labelled photos (labels that are competition columns) are split by group: one group of every class
with at least two groups is held out.  Prints the final-epoch validation top-1 of both.

Usage: python benchmarks/real_dev_finetune.py [--shared ../shared] [--epochs 12] [--size 128]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from classifier.data import csv_samples, holdout_group_per_class
from classifier.train import compare_initialisations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    manifest = args.shared / "data" / "real-dev" / "manifest.csv"
    samples = csv_samples(manifest, root=manifest.parent / "images", skip_unknown=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = compare_initialisations(samples, holdout_group_per_class(samples), Path(tmp), epochs=args.epochs,
                                      size=args.size)  # fmt: skip
    print(f"{int(res['train_images'])} training / {int(res['val_images'])} validation photos (group-aware)")
    print(f"EfficientNet-Lite0 ImageNet-pretrained, fine-tuned: top-1 {res['pretrained']:.3f}")
    print(f"EfficientNet-Lite0 from scratch:                    top-1 {res['scratch']:.3f}")


if __name__ == "__main__":
    main()
