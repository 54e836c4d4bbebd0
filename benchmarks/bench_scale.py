"""The local streaming engine next to ``--engine ray`` (one engine per actor) on this machine, in the same run on
the same files and models: 1 actor, 2 actors, and a two-node cluster of 1 + 1 CPUs.  Prints figures; no pass/fail.

For each run: start-up (models loaded; for Ray, until the first actor is ready), compute time and frames/s once
running, wall time, Ray's overhead in ms per frame against the local engine, and the bytes Ray moved per frame:
the object store's own counter (``cumulative_created_bytes`` summed over the nodes; small objects are inlined
in Ray's RPCs and never reach it) and the pickled size of every shard's arguments and results.  ``--rss-frames N``
also runs N frames (the generated files repeated under other sequence ids, ``--rss-size`` frames) on two actors
and prints the driver's and each actor's RSS as the run goes.  Ray clusters are started here and stopped.

Usage: python benchmarks/bench_scale.py [--models DIR] [--sequences 200] [--size 2048x1536] [--rss-frames 20000]
       [--rss-size 320x240] [--skip-small-cluster] [--skip-one-node] [--device cpu|cuda] [--gpu-actor]
Without --models (or where it lacks detector.pt/classifier.pt), bench_engine's stand-in models are used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RAY = Path(sys.executable).with_name("ray")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _models(args: argparse.Namespace, tmp: Path) -> Path:
    if args.models and all((args.models / f).exists() for f in ("detector.pt", "classifier.pt")):
        return args.models
    from bench_engine import _make_models  # the same stand-in models as the engine benchmark

    return _make_models(tmp / "models")


def _store_bytes() -> int | None:
    """Ray's own counter: bytes ever created in the object stores of the cluster (None without grpcio)."""
    try:
        import ray
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        reply = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address))
        return int(reply.store_stats.cumulative_created_bytes)
    except ImportError:
        return None


def _local(refs, models: Path, device: str | None, workers: int) -> dict:
    from camtrap.engine import EngineConfig, run
    from classifier.predict import CropClassifier
    from classifier.predict import load as load_classifier
    from detector.model import load as load_detector
    from detector.predict import FrameDetector

    t0 = time.perf_counter()
    det = load_detector(models / "detector.pt", device=device)
    crop = CropClassifier(load_classifier(models / "classifier.pt", device=device), det.spec.conservative_threshold)
    t1 = time.perf_counter()
    cfg = EngineConfig(workers=workers)
    crops = sum(len(o.crops) for o in run(refs, detect=FrameDetector(det), crop=crop, cfg=cfg))
    t2 = time.perf_counter()
    return {"startup": t1 - t0, "compute": t2 - t1, "wall": t2 - t0, "crops": crops, "store": None, "stats": None}


def _ray(refs, models: Path, tmp: Path, device: str | None, progress=None, **cfg) -> dict:
    from camtrap.shards import ShardStore
    from detector.model import read_spec
    from hakuna.ray_runner import RayConfig, RayStats, run_on_ray

    spec = read_spec(models / "detector.pt")
    stats, before, t0 = RayStats(), _store_bytes(), time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="shards-", dir=tmp))
    outcomes = run_on_ray(refs, ShardStore(folder), detector=str(models / "detector.pt"),
                          classifier=str(models / "classifier.pt"), crop_threshold=spec.conservative_threshold,
                          cfg=RayConfig(address=cfg.pop("address", "local"), **cfg), device=device, stats=stats,
                          progress=progress)  # fmt: skip
    crops = sum(len(o.crops) for o in outcomes)
    wall = time.perf_counter() - t0
    after = _store_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    store = None if before is None or after is None else after - before
    return {"startup": stats.startup_s, "compute": stats.compute_s, "wall": wall, "crops": crops, "store": store,
            "stats": stats}  # fmt: skip


def _cluster(cpus: tuple[int, int], temp: Path) -> str:
    """A two-node local cluster (``ray start`` twice), as the tests start one."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--disable-usage-stats"]
    subprocess.run([str(RAY), "start", "--head", f"--port={port}", f"--num-cpus={cpus[0]}", f"--temp-dir={temp}",
                    "--include-dashboard=false", *common], check=True, capture_output=True, timeout=180)  # fmt: skip
    subprocess.run([str(RAY), "start", f"--address=127.0.0.1:{port}", f"--num-cpus={cpus[1]}", *common], check=True,
                   capture_output=True, timeout=180)  # fmt: skip
    return f"127.0.0.1:{port}"


def _print(rows: list[tuple[str, dict]], frames: int) -> None:
    local = rows[0][1]
    print(f"\n{'run':34s} {'start-up s':>10s} {'compute s':>9s} {'frames/s':>9s} {'vs local':>8s} {'wall s':>7s} "
          f"{'overhead ms/frame':>17s} {'store B/frame':>13s} {'shipped B/frame':>15s}")  # fmt: skip
    for name, r in rows:
        fps = frames / r["compute"]
        over = (r["compute"] - local["compute"]) / frames * 1000
        store = "n/a" if r["store"] is None else f"{r['store'] / frames:.0f}"
        st = r["stats"]
        shipped = "-" if st is None else f"{(st.sent_bytes + st.returned_bytes) / frames:.0f}"
        ratio = local["compute"] / r["compute"]
        print(f"{name:34s} {r['startup']:10.1f} {r['compute']:9.1f} {fps:9.1f} {ratio:7.2f}x {r['wall']:7.1f} "
              f"{over if st else 0:17.2f} {store:>13s} {shipped:>15s}")  # fmt: skip


def _driver(rows: list[tuple[str, dict]], frames: int) -> None:
    for name, r in rows[1:]:
        us = r["stats"].driver_s / frames * 1e6
        print(f"{name}: the driver's own work on the results (fetch, unpickle, shard files) took {us:.0f} us per "
              f"frame: one driver keeps up with ~{1e6 / us:,.0f} frames/s")  # fmt: skip


def _rss_run(args: argparse.Namespace, models: Path, tmp: Path) -> None:
    from camtrap.dataset import read_test
    from camtrap.frames import frame_ref
    from camtrap.synth import SynthConfig, generate
    from hakuna.ray_runner import connect

    w, h = (int(v) for v in args.rss_size.split("x"))
    out = generate(SynthConfig(sequences=120, seed=78, size=(w, h), train_seasons=1), tmp / "rss", workers=2)
    names = [r.file for r in read_test(out.test_data)[0].frame_refs()]
    refs = [frame_ref(out.test_data, names[i % len(names)], f"r{i // 3}") for i in range(args.rss_frames)]
    connect("local")
    driver, done = [], [0]

    def progress(n: int) -> None:
        done[0] += n
        if not driver or done[0] - driver[-1][0] >= args.rss_frames // 10:
            driver.append((done[0], round(_rss_mb())))

    half = max(1, (os.cpu_count() or 1) // 2)
    r = _ray(refs, models, tmp, args.device, progress=progress, max_actors=2, cpus_per_actor=half)
    st = r["stats"]
    print(f"\n{args.rss_frames} frames of {w}x{h} on 2 actors: {r['wall']:.0f} s ({args.rss_frames / r['compute']:.1f} "
          f"frames/s once running), {r['crops']} crops")  # fmt: skip
    print("driver RSS MB (frames done: MB): " + ", ".join(f"{i}: {m}" for i, m in driver)
          + f"; peak {_peak_mb():.0f}")  # fmt: skip
    for a, samples in sorted(st.actor_rss_mb.items()):
        pick = samples[:: max(1, len(samples) // 8)] + samples[-1:]
        print(f"actor {a} RSS MB (its frames: MB): " + ", ".join(f"{i}: {m:.0f}" for i, m in pick)
              + f"; peak {st.actor_peak_mb[a]:.0f}")  # fmt: skip


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:  # noqa: PLR0915 - a script: one table
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--sequences", type=int, default=200, help="half of them form the test season")
    parser.add_argument("--size", default="2048x1536")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpu-actor", action="store_true", help="only local vs one actor holding the GPU")
    parser.add_argument("--skip-small-cluster", action="store_true")
    parser.add_argument("--skip-one-node", action="store_true", help="no 1- and 2-actor runs on this machine")
    parser.add_argument("--rss-frames", type=int, default=0)
    parser.add_argument("--rss-size", default="320x240")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # one mode for the nodes and the driver (see the tests)
    import ray

    from camtrap.dataset import read_test
    from camtrap.synth import SynthConfig, generate
    from hakuna.ray_runner import connect

    w, h = (int(v) for v in args.size.split("x"))
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir="/tmp") as tmp:
        tmp = Path(tmp)
        out = generate(SynthConfig(sequences=args.sequences, seed=77, size=(w, h), train_seasons=1), tmp / "data",
                       workers=2)  # fmt: skip
        refs = read_test(out.test_data)[0].frame_refs()
        models = _models(args, tmp)
        workers = min(4, cpus)
        _local(refs[:40], models, args.device, workers)  # page cache and model files warm for every row
        rows = [("local engine (one process)", _local(refs, models, args.device, workers))]
        if not args.skip_one_node:
            connect("local")  # a local Ray cluster of this machine's CPUs, started once (not counted)
            if args.gpu_actor:
                gpu = _ray(refs, models, tmp, args.device, max_actors=1, gpus_per_actor=1)
                rows.append(("Ray, 1 actor on the GPU", gpu))
            else:
                rows.append(("Ray, 1 actor", _ray(refs, models, tmp, args.device, max_actors=1)))
                rows.append(("Ray, 2 actors", _ray(refs, models, tmp, args.device, max_actors=2,
                                                   cpus_per_actor=max(1, cpus // 2))))  # fmt: skip
            ray.shutdown()
        if not (args.skip_small_cluster or args.gpu_actor):
            temp = Path(tempfile.mkdtemp(prefix="hkb", dir="/tmp"))  # Ray's socket paths must stay short
            try:
                address = _cluster((1, 1), temp)
                connect(address)
                rows.append(("Ray, 2-node 1+1 CPU cluster", _ray(refs, models, tmp, args.device, address=address)))
            finally:
                ray.shutdown()
                subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=180)
                shutil.rmtree(temp, ignore_errors=True)
        print(f"{len(refs)} frames of {w}x{h}, {rows[0][1]['crops']} crops, models {models}, {cpus} CPUs, "
              f"device {args.device}")  # fmt: skip
        _print(rows, len(refs))
        _driver(rows, len(refs))
        small = dict(rows).get("Ray, 2-node 1+1 CPU cluster")
        if small:
            bound = 3 * rows[0][1]["wall"] + small["stats"].all_ready_s
            print(f"1+1 CPU cluster: {small['wall']:.1f} s against 3 x the local wall time + the actors' start-up "
                  f"= {bound:.1f} s")  # fmt: skip
        if args.rss_frames:
            _rss_run(args, models, tmp)
            ray.shutdown()


if __name__ == "__main__":
    main()
