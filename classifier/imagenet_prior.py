"""What an ImageNet classifier already knows about the 53 species groups: a zero-shot prior for few-shot training.

Many Serengeti species are ImageNet classes (zebra, hippopotamus, warthog, impala, hartebeest, ...) or close to
one (a caracal looks like a lynx, a zorilla like a skunk).  ``HINTS`` names, for each species group, the ImageNet
classes that stand for it; the prior score of a group is the log of the ImageNet probability mass on its
classes.  A few-shot head adds this score, scaled by one learnt weight, to its own logits, so a group with one
or no training photo can still be recognised, and the learnt weight says how far to trust the hints.  Groups
without a good ImageNet stand-in (giraffe, rhinoceros, wildebeest, eland, ...) are left out rather than
guessed; their score is a constant.  The table is about species, not about any photo.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HINTS", "hint_matrix", "NO_HINT_LOGP"]

NO_HINT_LOGP = float(np.log(1e-3))  # the prior score of a group with no hint (any constant: biases absorb it)

_REPTILES = ("frilled lizard", "alligator lizard", "green lizard", "agama", "banded gecko", "common iguana",
             "African chameleon", "Komodo dragon", "whiptail", "African crocodile", "mud turtle", "box turtle",
             "terrapin", "leatherback turtle", "thunder snake", "ringneck snake", "hognose snake", "green snake",
             "king snake", "garter snake", "water snake", "vine snake", "night snake", "boa constrictor", "rock python",
             "Indian cobra", "green mamba", "horned viper", "diamondback", "sidewinder")  # fmt: skip
_INSECTS = ("tarantula", "wolf spider", "black and gold garden spider", "barn spider", "garden spider", "black widow",
            "scorpion", "tiger beetle", "ground beetle", "long-horned beetle", "leaf beetle", "dung beetle",
            "rhinoceros beetle", "weevil", "ant", "grasshopper", "cricket", "walking stick", "cockroach", "mantis",
            "cicada", "leafhopper", "lacewing", "dragonfly", "damselfly", "admiral", "ringlet", "monarch",
            "cabbage butterfly", "sulphur butterfly", "lycaenid", "fly", "bee")  # fmt: skip
_BIRDS = ("hornbill", "bee eater", "crane bird", "white stork", "black stork", "kite", "bald eagle", "hen", "cock",
          "jay", "magpie", "robin", "bulbul", "goldfinch", "house finch", "brambling", "junco", "indigo bunting",
          "water ouzel", "chickadee", "coucal", "hummingbird", "jacamar", "toucan", "drake", "goose", "black swan",
          "spoonbill", "flamingo", "little blue heron", "American egret", "bittern", "limpkin", "ruddy turnstone",
          "red-backed sandpiper", "redshank", "dowitcher", "oystercatcher", "pelican", "albatross", "great grey owl",
          "lorikeet", "sulphur-crested cockatoo", "macaw", "African grey", "peacock", "quail", "partridge",
          "black grouse", "ptarmigan", "ruffed grouse", "prairie chicken")  # fmt: skip

HINTS: dict[str, tuple[str, ...]] = {
    "aardwolf": ("hyena",),
    "baboon": ("baboon",),
    "batearedfox": ("kit fox", "grey fox", "red fox", "Arctic fox"),
    "buffalo": ("water buffalo", "bison", "ox"),
    "caracal": ("lynx",),
    "cattle": ("ox",),
    "cheetah": ("cheetah",),
    "elephant": ("African elephant", "Indian elephant", "tusker"),
    "gazellegrants": ("gazelle",),
    "gazellethomsons": ("gazelle",),
    "hare": ("hare", "wood rabbit"),
    "hartebeest": ("hartebeest",),
    "hippopotamus": ("hippopotamus",),
    "honeybadger": ("badger",),
    "hyenaspotted": ("hyena",),
    "hyenastriped": ("hyena",),
    "impala": ("impala",),
    "insectspider": _INSECTS,
    "jackal": ("coyote", "dingo", "red wolf"),
    "koribustard": ("bustard",),
    "leopard": ("leopard", "jaguar"),
    "lionfemale": ("lion",),
    "lionmale": ("lion",),
    "mongoose": ("mongoose",),
    "monkeyvervet": ("guenon", "patas"),
    "ostrich": ("ostrich",),
    "otherbird": _BIRDS,
    "porcupine": ("porcupine",),
    "reptiles": _REPTILES,
    "rodents": ("marmot", "hamster", "fox squirrel", "guinea pig", "beaver"),
    "topi": ("hartebeest",),
    "vulture": ("vulture",),
    "warthog": ("warthog", "wild boar", "hog"),
    "wildcat": ("Egyptian cat", "tabby", "tiger cat"),
    "zebra": ("zebra",),
    "zorilla": ("skunk", "polecat", "black-footed ferret"),
}


def hint_matrix(classes: tuple[str, ...], imagenet: list[str]) -> np.ndarray:
    """``len(classes) x len(imagenet)`` 0/1 matrix: which ImageNet classes stand for each class (rows of 0 for
    classes without a hint).  Raises ValueError for a hint that is not an ImageNet class name."""
    index = {name: i for i, name in enumerate(imagenet)}
    out = np.zeros((len(classes), len(imagenet)), np.float32)
    for row, cls in enumerate(classes):
        for name in HINTS.get(cls, ()):
            if name not in index:
                raise ValueError(f"ImageNet hint {name!r} for {cls!r} is not an ImageNet class")
            out[row, index[name]] = 1.0
    return out
