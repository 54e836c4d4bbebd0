"""``hakuna classifier train --corrections``: the training set a review site's corrections make, alone or added to
labelled photos, and the warning when a class would vanish from the retrained model."""

from __future__ import annotations

import argparse
import logging

from hakuna.commands import UsageError

__all__ = ["correction_set"]

log = logging.getLogger(__name__)


def correction_set(args: argparse.Namespace):
    """The corrections' crops, added to the --images-csv photos when given; warns about classes that vanish."""
    from camtrap.labels import EMPTY
    from classifier.corrections import learned_classes, with_corrections
    from classifier.data import correction_samples, csv_samples, read_corrections
    from hakuna.review import review_labels

    if args.images is None:
        raise UsageError("--corrections needs --images (the image root the review site was built from)")
    if args.data is not None:
        raise UsageError("--corrections goes with --images-csv (labelled photos), not --data")
    if args.reviewed_only and args.include_unreviewed:
        raise UsageError("--reviewed-only (the default) and --include-unreviewed contradict each other")
    samples = correction_samples(args.corrections, args.images, include_unreviewed=args.include_unreviewed,
                                 allow_outside_root=args.allow_outside_root)  # fmt: skip
    table = read_corrections(args.corrections)
    known = {c for cell in (*table["predicted"], *table["label"]) for c in cell.split(";") if c}
    where = "predicted or given in the corrections"
    if args.review is not None:
        known |= set(review_labels(args.review))
        where = "of the classifier the review site shows"
    if args.images_csv is not None:
        labelled = csv_samples(args.images_csv, args.root)
        known |= learned_classes(labelled)
        samples = with_corrections(labelled, samples)
        where += " or in --images-csv"
    if vanished := sorted(known - learned_classes(samples) - {EMPTY}):
        hint = "" if args.images_csv is not None else "; add your labelled photos with --images-csv LABELLED.csv"
        log.warning("the new model has no example of %d class(es) %s, and will not learn them: %s%s",
                    len(vanished), where, ", ".join(vanished), hint)
    return samples
