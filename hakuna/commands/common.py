"""Arguments several subcommands share, and the configs built from them.  Light at import: no torch."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from camtrap.devices import DECODERS, DEVICES

__all__ = ["int_in", "float_in", "detector_file",
           "add_device", "add_engine", "add_trust", "add_outside_root", "engine_config", "device_of", "default_workers",
           "out_path", "add_ray", "ray_source"]


def _in_range(kind: type, lo: float | None, hi: float | None, low_open: bool) -> Callable[[str], float]:
    low = "" if lo is None else f"{'>' if low_open else '>='} {lo:g}"
    high = "" if hi is None else f"<= {hi:g}"
    want = " and ".join(x for x in (low, high) if x)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'an integer' if kind is int else 'a number'} is needed, got {text!r}") \
                from None  # fmt: skip
        if not math.isfinite(value) or (lo is not None and (value < lo or (low_open and value == lo))) \
                or (hi is not None and value > hi):  # fmt: skip
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    parse.bounds = (lo, hi, low_open)  # type: ignore[attr-defined]  # for the test that probes every option
    return parse


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer within [lo, hi] (either end open when None); else an argparse error."""
    return _in_range(int, lo, hi, False)


def float_in(lo: float | None = None, hi: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number within [lo, hi] (``low_open``: > lo); else an argparse error."""
    return _in_range(float, lo, hi, low_open)


def detector_file(text: str) -> Path:
    """An argparse ``type=`` for a detector: a file, or the name of a registry release already in the cache
    (``hakuna weights fetch NAME`` put it there; nothing is downloaded here)."""
    path = Path(text).expanduser()
    if path.exists() or path.suffix.lower() in (".pt", ".onnx"):
        return path
    from detector.weights import cache_dir, known_releases, release_named

    release = release_named(text)
    if release is None:
        raise argparse.ArgumentTypeError(f"{text!r}: no such file and no known release ({', '.join(known_releases())})")
    cached = cache_dir() / release.filename
    if not cached.exists():
        raise argparse.ArgumentTypeError(f"release {release.name} is not in the cache ({cached}): run `hakuna weights "
                                         f"fetch {release.name}` first (it needs the internet once)")  # fmt: skip
    from camtrap.download import check_digests

    problem = check_digests(cached, sha256=release.sha256, md5=release.md5)  # as fetch checks every use
    if problem is not None:
        raise argparse.ArgumentTypeError(f"the cached {cached} does not match release {release.name} ({problem}): "
                                         f"run `hakuna weights fetch {release.name}` again")  # fmt: skip
    return cached


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="where models run (auto: cuda if available)")


def add_engine(p: argparse.ArgumentParser, *, batch: int = 8) -> None:
    """Batch sizes, decoding threads and the decoder for commands that stream frames through the engine."""
    p.add_argument("--batch-size", type=int_in(1, 4096), default=batch, help="detector batch (frames)")
    p.add_argument("--classifier-batch", type=int_in(1, 4096), default=64, help="classifier batch (crops)")
    p.add_argument("--workers", type=int_in(0, 256), default=default_workers(),
                   help="decoding threads (0: decode in the calling thread)")
    p.add_argument("--decoder", choices=DECODERS, default="auto",
                   help="pil: CPU decode at reduced size; torch: torchvision/nvJPEG batches on the model's device; "
                        "auto: torch on CUDA, else pil")
    p.add_argument("--max-pixels", type=int_in(1, 10**10), default=100_000_000,
                   help="larger images are refused (a failure record)")
    p.add_argument("--max-file-mb", type=int_in(1, 1_000_000), default=100,
                   help="larger image files are refused before they are opened (a failure record)")


def add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-model", action="store_true",
                   help="load .pt files even if they need unrestricted pickle (can run code: only for files you trust)")


def add_outside_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-outside-root", action="store_true",
                   help="let image names (and symbolic links) lead outside the data folder")


def engine_config(args: argparse.Namespace, **overrides):
    """The :class:`camtrap.engine.EngineConfig` the engine arguments describe."""
    from camtrap.engine import EngineConfig

    values = {"detector_batch": args.batch_size, "classifier_batch": args.classifier_batch, "workers": args.workers,
              "decoder": args.decoder, "max_pixels": args.max_pixels,
              "max_file_bytes": args.max_file_mb * 1_000_000}  # fmt: skip
    values.update(overrides)
    return EngineConfig(**values)


def device_of(args: argparse.Namespace) -> str | None:
    return None if args.device == "auto" else args.device


def out_path(path: Path, what: str = "output") -> Path:
    """Check ``path`` can be written before any work starts (see :func:`camtrap.fileio.check_writable`)."""
    from camtrap.fileio import check_writable

    return check_writable(path, what=what)


def add_ray(p: argparse.ArgumentParser) -> None:
    """Running the engine on a Ray cluster instead of this machine (one engine per actor, see the README)."""
    g = p.add_argument_group("cluster (Ray)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine's streaming engine; ray: one engine per actor on a cluster (README)")
    g.add_argument("--address", default="auto",
                   help="Ray cluster: auto (the one this machine belongs to), HOST:PORT, or local (start one here)")
    g.add_argument("--shards-dir", type=Path, help="per-shard results (default: next to --out, .shards)")
    g.add_argument("--sequences-per-shard", type=int_in(1, 10**6), default=50)
    g.add_argument("--max-actors", type=int_in(1, 1024), default=4, help="largest number of actors")
    g.add_argument("--cpus-per-actor", type=float_in(0.01, 1024), default=None,
                   help="CPUs each actor asks for, its decode threads included (default: GPU clusters CPUs per GPU, "
                        "else the smallest node's CPUs)")
    g.add_argument("--gpus-per-actor", type=float_in(0, 64), default=None,
                   help="GPUs each actor asks for (default: 1 where the cluster has GPUs, else 0)")
    g.add_argument("--shards-in-flight", type=int_in(1, 1000), default=2, help="shards queued at one actor at most")
    g.add_argument("--stall-timeout", type=float_in(1, 7 * 24 * 3600), default=600.0,
                   help="seconds without a finished frame before the run stops with what Ray reports pending")


def ray_source(args: argparse.Namespace, detector, classifier, *, progress=None, detector_path=None,
               classifier_path=None, detections=None, crop_threshold=None):
    """A function computing frames' outcomes on the cluster (:mod:`hakuna.ray_runner`), shard by shard.

    ``detector`` None: a classify-only run on the boxes of ``detections`` (by file), cropped at ``crop_threshold``.
    """
    from camtrap.shards import ShardStore
    from hakuna.ray_runner import RayConfig, run_on_ray

    store = ShardStore(args.shards_dir or args.out.with_name(args.out.name + ".shards"))
    cfg = RayConfig(address=args.address,
                    sequences_per_shard=args.sequences_per_shard, max_actors=args.max_actors,
                    cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor,
                    shards_in_flight=args.shards_in_flight, stall_timeout_s=args.stall_timeout)  # fmt: skip
    if crop_threshold is None:
        crop_threshold = detector.spec.conservative_threshold

    def source(frames):
        return run_on_ray(frames, store, detector=str(detector_path) if detector is not None else None,
                          classifier=str(classifier_path) if classifier is not None else None,
                          crop_threshold=crop_threshold, cfg=cfg, engine=engine_config(args), trust=args.trust_model,
                          device=device_of(args), resume=args.resume, detections=detections,
                          detect_threshold=getattr(args, "threshold", None) if detector is not None else None,
                          progress=progress)  # fmt: skip

    return source
