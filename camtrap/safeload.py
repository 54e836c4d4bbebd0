"""Loading model files from strangers without running their code.

A PyTorch ``.pt`` file is a pickle, and unpickling can call any function it names (``os.system`` included).
Hakuna never unpickles a file freely unless the user says they trust it:

* classifier checkpoints hold only tensors and plain data and load with ``torch.load(weights_only=True)``;
* detector checkpoints written by ultralytics or YOLOv5 pickle their model classes.  Every global the pickle
  references is listed first (``torch.serialization.get_unsafe_globals_in_checkpoint``, which reads the
  pickle without executing it); each must pass the caller's allowlist (model classes from known module
  trees); then the file is loaded by PyTorch's restricted unpickler with exactly those classes allowed, so
  nothing outside the list can be called even by a file crafted to fool the scan;
* ``trust=True`` (``--trust-model``) loads the old way, for files whose source the user vouches for.

Files that fail are refused with :class:`UntrustedFileError`, whose message says what to do instead.
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["UntrustedFileError", "ModelFileError", "pickle_globals", "load_torch_file", "resolve_global",
           "module_class_allowlist", "check_finite_weights", "check_onnx_weights"]

PLAIN_GLOBALS = frozenset({"collections.OrderedDict", "builtins.set", "__builtin__.set", "torch.Size"})


class ModelFileError(ValueError):
    """A model file that cannot be read at all (not a checkpoint, truncated, wrong kind)."""


class UntrustedFileError(ModelFileError):
    """A model file that would run code when loaded; the message names what it references and what to do."""


def pickle_globals(path: str | os.PathLike[str]) -> list[str]:
    """Every global (``module.name``) a torch checkpoint's pickle references that PyTorch does not already
    consider safe, read without executing the pickle.

    Raises:
        ModelFileError: not a zip-format PyTorch checkpoint, or unreadable.
    """
    import torch

    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            raise ModelFileError(f"{path}: not a PyTorch checkpoint (zip format expected); re-save it with a "
                                 "current PyTorch, or export it to ONNX")  # fmt: skip
        return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
    except ModelFileError:
        raise
    except pickle.UnpicklingError as exc:  # opcodes PyTorch's pickle reader does not take: not a plain checkpoint
        raise UntrustedFileError(f"{path}: refused: its pickle uses constructs the restricted loader does not read "
                                 f"({exc})") from exc  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any reader error means the file is damaged or not a checkpoint
        raise ModelFileError(f"{path}: cannot read it as a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def resolve_global(name: str) -> Any:
    """The object a pickle global names (its module is imported; the caller has allowlisted it)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def module_class_allowlist(trees: tuple[str, ...], *, min_dots: int = 0) -> Callable[[str], bool]:
    """An ``allow`` for :func:`load_torch_file`: plain containers, and ``torch.nn.Module`` classes whose names
    start with one of ``trees`` (and have at least ``min_dots`` dots)."""

    def allow(name: str) -> bool:
        if name in PLAIN_GLOBALS:
            return True
        if not name.startswith(trees) or name.count(".") < min_dots:
            return False
        try:
            import torch

            obj = resolve_global(name)
        except (ImportError, AttributeError):
            return False
        return isinstance(obj, type) and issubclass(obj, torch.nn.Module)

    return allow


def load_torch_file(path: str | os.PathLike[str], *, allow: Callable[[str], bool] | None = None,
                    trust: bool = False, advice: str = "") -> Any:
    """Load a torch checkpoint safely (see the module docstring).

    Args:
        path: the file.
        allow: which extra globals (``module.name``) may be unpickled; None: plain data only.
        trust: unpickle without restrictions (the user vouches for the file).
        advice: appended to refusals (what to use instead).

    Raises:
        UntrustedFileError: the file references globals outside the allowlist.
        ModelFileError: the file is not a readable checkpoint.
    """
    import torch

    path = Path(path)
    if trust:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - a damaged file, reported in one line
            raise ModelFileError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from exc
    names = pickle_globals(path)
    refused = [n for n in names if allow is None or not allow(n)]
    if refused:
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise UntrustedFileError(f"{path}: refused: loading it would call {shown}, which are not known model "
                                 f"classes (a .pt file can run code when loaded). {advice}".rstrip())  # fmt: skip
    try:
        with torch.serialization.safe_globals([resolve_global(n) for n in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UntrustedFileError(f"{path}: refused by the restricted loader ({str(exc).splitlines()[0]}). "
                                 f"{advice}".rstrip()) from exc  # fmt: skip
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(f"{path}: references a class this installation does not have ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - truncated or damaged files, reported in one line
        raise ModelFileError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from exc


def check_finite_weights(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Refuse a model whose floating-point weights (a ``state_dict``) hold NaN or infinities: a damaged or hostile
    file would otherwise give NaN probabilities, or a detector that silently finds nothing.

    Raises:
        ModelFileError: naming the file and the first such tensor.
    """
    for name, tensor in state.items():
        if getattr(tensor, "is_floating_point", lambda: False)() and not bool(tensor.isfinite().all()):
            raise ModelFileError(f"{path}: weight {name!r} holds NaN or infinite values")


def check_onnx_weights(path: str | os.PathLike[str]) -> None:
    """:func:`check_finite_weights` for an ONNX file's initializers.  Skipped where the ``onnx`` package is absent
    (the offline runner, which runs the weights its own package exported) or cannot parse the file (onnxruntime
    then says what is wrong with it).

    Raises:
        ModelFileError: naming the file and the first initializer with NaN or infinite values.
    """
    try:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
    except Exception:  # noqa: BLE001 - no onnx package, or a file only onnxruntime can judge
        return
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ModelFileError(f"{path}: weight {init.name!r} holds NaN or infinite values")
