"""The label schema: the competition's 54 columns and how Snapshot Serengeti's LILA categories map onto them.

The competition scores 54 columns in alphabetical order, ``empty`` at index 15.  The 53 others are the
species groups the classifier predicts.  Snapshot Serengeti on LILA uses 61 category names; 54 of them are
the columns (one under another spelling) and 7 are not.  How each of those 7 is treated is decided here,
in one table, so every reader and trainer agrees:

=============  =======================  ==========================================================
LILA name      treatment                why
=============  =======================  ==========================================================
``lioncub``    -> ``lionfemale``        The Snapshot Serengeti interface offered one choice,
                                        "Lion (female or cub)"; the competition's ``lionfemale``
                                        column is that choice.
``human``      annotation dropped       No column.  Dropping the annotation (rather than calling the
``fire``                                sequence empty) keeps a wrong ``empty=1`` out of training;
``hyenabrown``                          a sequence left with no annotation is dropped whole.
``wilddog``                             Brown hyena, wild dog, kudu and pangolin are absent or near
``kudu``                                absent from the Serengeti plots; their few labels are more
``pangolin``                            likely mistakes than a species a column could learn.
=============  =======================  ==========================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = [
    "COLUMNS",
    "EMPTY",
    "EMPTY_INDEX",
    "EMPTY_LABELS",
    "is_empty_label",
    "skipped_labels_line",
    "SPECIES",
    "LilaTreatment",
    "LILA_TREATMENT",
    "UnknownCategoryError",
    "column_for_lila",
    "check_columns",
]

COLUMNS: tuple[str, ...] = (
    "aardvark", "aardwolf", "baboon", "bat", "batearedfox", "buffalo", "bushbuck", "caracal", "cattle",
    "cheetah", "civet", "dikdik", "duiker", "eland", "elephant", "empty", "gazellegrants",
    "gazellethomsons", "genet", "giraffe", "guineafowl", "hare", "hartebeest", "hippopotamus",
    "honeybadger", "hyenaspotted", "hyenastriped", "impala", "insectspider", "jackal", "koribustard",
    "leopard", "lionfemale", "lionmale", "mongoose", "monkeyvervet", "ostrich", "otherbird", "porcupine",
    "reedbuck", "reptiles", "rhinoceros", "rodents", "secretarybird", "serval", "steenbok", "topi",
    "vulture", "warthog", "waterbuck", "wildcat", "wildebeest", "zebra", "zorilla",
)  # fmt: skip
"""The 54 competition columns, in submission order."""

EMPTY = "empty"
EMPTY_INDEX = COLUMNS.index(EMPTY)
SPECIES: tuple[str, ...] = tuple(c for c in COLUMNS if c != EMPTY)
"""The 53 species groups (every column but ``empty``), in column order."""

EMPTY_LABELS = frozenset({"empty", "blank"})
"""Labels (compared case-insensitively, stripped) that mark a photo with no animal: ``empty``, ``blank``
(``Blank`` from a labelling tool too).  Such rows are empty photos, never a class of a classifier: its
P(empty) comes from the detector and fusion."""


def is_empty_label(label: str) -> bool:
    """True when ``label`` marks an empty photo (see :data:`EMPTY_LABELS`)."""
    return label.strip().lower() in EMPTY_LABELS


def skipped_labels_line(labels: Iterable[str], among: str, shown: int = 5) -> str:
    """``"N row(s) skipped: label not among <among> (x, y, ...)"``, naming up to ``shown`` distinct labels."""
    labels = list(labels)
    names = sorted(set(labels))
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"{len(labels)} row(s) skipped: label not among {among} ({listed})"


class LilaTreatment(enum.Enum):
    """What happens to a LILA category that is not a competition column."""

    DROP_ANNOTATION = "drop-annotation"


# LILA names that differ from a column, or are not columns at all.
LILA_TREATMENT: dict[str, str | LilaTreatment] = {
    "lioncub": "lionfemale",
    "vervetmonkey": "monkeyvervet",
    "human": LilaTreatment.DROP_ANNOTATION,
    "fire": LilaTreatment.DROP_ANNOTATION,
    "hyenabrown": LilaTreatment.DROP_ANNOTATION,
    "wilddog": LilaTreatment.DROP_ANNOTATION,
    "kudu": LilaTreatment.DROP_ANNOTATION,
    "pangolin": LilaTreatment.DROP_ANNOTATION,
}


class UnknownCategoryError(ValueError):
    """A category name that is neither a column nor listed in :data:`LILA_TREATMENT`."""


def column_for_lila(name: str) -> str | None:
    """Return the competition column for a LILA category name, or None when its annotation is dropped.

    Raises:
        UnknownCategoryError: the name is neither a column nor a known LILA category.
    """
    key = name.strip().lower()
    if key in COLUMNS:
        return key
    treatment = LILA_TREATMENT.get(key)
    if treatment is None:
        raise UnknownCategoryError(f"unknown category {name!r}: not a competition column nor a LILA category")
    return None if treatment is LilaTreatment.DROP_ANNOTATION else str(treatment)


def check_columns(columns: Iterable[str], *, source: str) -> None:
    """Raise ValueError naming ``source`` unless ``columns`` are exactly the 54 columns in order."""
    got = list(columns)
    if got == list(COLUMNS):
        return
    missing = [c for c in COLUMNS if c not in got]
    extra = [c for c in got if c not in COLUMNS]
    if missing or extra:
        raise ValueError(f"{source}: wrong class columns; missing {missing}, unexpected {extra}")
    if len(got) != len(COLUMNS):
        dupes = sorted({c for c in got if got.count(c) > 1})
        raise ValueError(f"{source}: duplicated class columns {dupes}")
    first = next(i for i, (a, b) in enumerate(zip(got, COLUMNS)) if a != b)
    raise ValueError(
        f"{source}: class columns out of order; position {first + 1} is {got[first]!r}, expected {COLUMNS[first]!r}"
    )
