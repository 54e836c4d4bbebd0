"""Hakuna on a Ray cluster (``--engine ray``): Ray ships work, not pixels.

::

    driver: frames ─► shards of whole sequences (FrameRefs, a few hundred bytes a frame) ─► actor pool
    actor (one per GPU, or per N CPUs): its node reads, decodes (nvJPEG on a GPU), detects, crops, classifies
    driver ◄─ compact per-frame outcomes (boxes + probabilities) ◄─ actor;  shard files ─► fuse, as a local run

Each actor (:class:`hakuna.ray_actor.ShardEngine`) loads both models once and runs the local streaming engine
(:func:`camtrap.engine.run`) over the shards it is handed; no decoded pixel leaves it.  The driver keeps at most
``shards_in_flight`` shards queued at each actor (backpressure: memory on both sides is a few shards, whatever
the run's length), writes each shard's outcomes atomically to its own file (:mod:`camtrap.shards`) as soon as it
returns, and at the end reads the shards back in order, so fusion sees exactly what the single-machine engine
streams.  A restarted job (``--resume``) skips the shards already written.

Resources cannot deadlock: an actor is the only thing that asks for resources (one GPU, or ``cpus_per_actor``
CPUs, its decode threads included), and the pool is sized from what the live nodes offer, so every actor fits a
node and nothing else waits for what the actors hold.  A cluster that cannot host one actor is refused at once
(:class:`ClusterError`, naming what is missing).  A watchdog stops the run when no frame has finished for
``stall_timeout_s`` and says what Ray reports pending.  Killed actors are restarted and their shards retried.
Hakuna must be installed on every node, and every node must see the images at the same paths.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from camtrap.engine import EngineConfig, FrameOutcome
from camtrap.frames import FrameRef
from camtrap.results import FrameDetections
from camtrap.shards import ShardStore, shard_frames
from hakuna.commands import UsageError

__all__ = ["RayConfig", "RayStats", "ClusterError", "run_on_ray", "connect", "actor_plan"]

log = logging.getLogger(__name__)
_POLL_S = 1.0  # how often the driver looks at the actors' progress while no shard returns


class ClusterError(UsageError):
    """The cluster cannot run the job: too small for one actor, or stalled (the message says why)."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run."""

    address: str = "auto"  # "auto": the cluster this machine belongs to; "HOST:PORT"; "local": start one here
    sequences_per_shard: int = 50
    max_actors: int = 4
    cpus_per_actor: float | None = None  # None: GPU clusters CPUs/GPU of the leanest GPU node, else its smallest node
    gpus_per_actor: float | None = None  # None: 1 where the cluster has GPUs, else 0
    shards_in_flight: int = 2  # shards queued at one actor at most (one running, the next one waiting)
    stall_timeout_s: float = 600.0  # no frame finished for this long: stop with what Ray reports pending
    retries: int = 3  # restarts of a dead actor, and retries of the shards it held


@dataclass
class RayStats:
    """What a run measured (filled in as it goes; the benchmark prints it)."""

    actors: int = 0
    startup_s: float = 0.0  # from the first actor asked for to the first one ready
    all_ready_s: float = 0.0
    compute_s: float = 0.0  # from the first actor ready to the last shard back
    frames: int = 0
    sent_bytes: int = 0  # pickled shard arguments
    returned_bytes: int = 0  # pickled shard results
    driver_s: float = 0.0  # the driver's own work on results (fetch, unpickle, write shard files): its cost per frame
    actor_rss_mb: dict = field(default_factory=dict)  # actor -> [(frames it had done, RSS MB), ...]
    actor_peak_mb: dict = field(default_factory=dict)


def connect(address: str) -> None:
    """Join a Ray cluster ("auto", "HOST:PORT"; "local": start a new one here), quiet, no usage reporting."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip


def _nodes() -> list[dict]:
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def actor_plan(cfg: RayConfig, nodes: list[dict]) -> tuple[float, float, int]:
    """(CPUs, GPUs) one actor asks for and how many such actors the ``nodes`` (resource dicts) can host."""
    gpu_nodes = [n for n in nodes if n.get("GPU", 0) >= 1]
    gpus = cfg.gpus_per_actor if cfg.gpus_per_actor is not None else (1.0 if gpu_nodes else 0.0)
    if cfg.cpus_per_actor is not None:
        cpus = cfg.cpus_per_actor
    elif gpus and gpu_nodes:
        cpus = max(1.0, min(math.floor(n.get("CPU", 0) / n["GPU"] * gpus) for n in gpu_nodes))
    else:
        cpus = max(1.0, min((math.floor(n.get("CPU", 0)) for n in nodes if n.get("CPU", 0) >= 1), default=1))

    def fits(n: dict) -> int:
        by_cpu = math.floor(n.get("CPU", 0) / cpus + 1e-9) if cpus else 10**6
        by_gpu = math.floor(n.get("GPU", 0) / gpus + 1e-9) if gpus else 10**6
        return min(by_cpu, by_gpu)

    return cpus, gpus, sum(fits(n) for n in nodes)


def _offer(nodes: list[dict]) -> str:
    return "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU" for n in nodes) or "no live node"


def _start_actors(cfg: RayConfig, n_shards: int, engine: EngineConfig, models: dict) -> tuple[list, float, float]:
    import ray

    from hakuna.ray_actor import REPORT_GROUP, ShardEngine

    nodes = _nodes()
    cpus, gpus, hosts = actor_plan(cfg, nodes)
    if hosts < 1:
        raise ClusterError(f"the Ray cluster cannot host one actor: each asks for {cpus:g} CPU and {gpus:g} GPU, and "
                           f"its nodes offer {_offer(nodes)} (lower --cpus-per-actor/--gpus-per-actor, or add nodes)")
    n = max(1, min(cfg.max_actors, hosts, n_shards))
    cls = ray.remote(concurrency_groups={REPORT_GROUP: 1})(ShardEngine)
    opts = {"num_cpus": cpus, "num_gpus": gpus, "max_restarts": cfg.retries, "max_task_retries": cfg.retries}
    actors = [cls.options(**opts).remote(**models, engine=engine, threads=max(1, round(cpus))) for _ in range(n)]
    log.info("%d actor(s) of %g CPU, %g GPU (the cluster can host %d)", n, cpus, gpus, hosts)
    return actors, cpus, gpus


def _pending(actors: list, inflight: dict, cpus: float, gpus: float) -> str:
    """What Ray reports about the job's actors and resources (for the watchdog's message)."""
    import ray
    from ray._private import state

    table = state.actors()
    states: dict[str, int] = {}
    for a in actors:
        s = table.get(a._actor_id.hex(), {}).get("State", "UNKNOWN")
        states[s] = states.get(s, 0) + 1
    total, free = ray.cluster_resources(), ray.available_resources()
    res = ", ".join(f"{k} {free.get(k, 0):g} free of {total[k]:g}" for k in ("CPU", "GPU") if k in total)
    return (f"Ray reports the {len(actors)} actor(s) (each asking for {cpus:g} CPU, {gpus:g} GPU) as "
            + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
            + f"; {len(inflight)} shard task(s) submitted and not finished; cluster resources: {res}")


class _Pool:
    """The driver's side of the actor pool: readiness, bounded submission, progress polling, the watchdog."""

    def __init__(self, actors: list, cfg: RayConfig, stats: RayStats, cpus: float, gpus: float) -> None:
        import ray

        from hakuna.ray_actor import REPORT_GROUP

        self.ray, self.group, self.cfg, self.stats = ray, REPORT_GROUP, cfg, stats
        self.actors, self.cpus, self.gpus = actors, cpus, gpus
        self.t0 = self.last = time.monotonic()
        self.waiting_ready = {a.ready.options(concurrency_group=REPORT_GROUP).remote(): i for i, a in enumerate(actors)}
        self.up: list[int] = []
        self.load = [0] * len(actors)
        self.inflight: dict = {}  # ObjectRef -> (shard index, actor index)
        self.polls: dict = {}  # ObjectRef -> actor index
        self.seen: dict[int, int] = {}

    def submit(self, queue: deque, args: Callable[[int], tuple]) -> None:
        for i in self.up:
            while queue and self.load[i] < self.cfg.shards_in_flight:
                k = queue.popleft()
                refs, known = args(k)
                self.inflight[self.actors[i].run_shard.remote(refs, known)] = (k, i)
                self.load[i] += 1

    def _mark_ready(self, ready: list) -> None:
        for ref in ready:
            i = self.waiting_ready.pop(ref)
            info = self.ray.get(ref)
            now = time.monotonic()
            if not self.up:
                self.stats.startup_s = now - self.t0
            self.up.append(i)
            self.stats.all_ready_s = now - self.t0
            self.last = now
            log.info("actor %d ready after %.1f s on %s (%s, pid %d)", i, now - self.t0, info["host"], info["device"],
                     info["pid"])  # fmt: skip

    def wait(self) -> list[tuple[int, int, dict]]:
        """Shards finished (index, actor, result); raises :class:`ClusterError` on a stall."""
        refs = [*self.inflight, *self.waiting_ready]
        done, rest = self.ray.wait(refs, num_returns=1, timeout=_POLL_S) if refs else ([], [])
        if done and rest:
            done += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        self._mark_ready([r for r in done if r in self.waiting_ready])
        finished = []
        for ref in (r for r in done if r in self.inflight):
            k, i = self.inflight.pop(ref)
            self.load[i] -= 1
            t = time.perf_counter()
            finished.append((k, i, self.ray.get(ref)))
            self.stats.driver_s += time.perf_counter() - t
        if finished:
            self.last = time.monotonic()
        else:
            self._poll_progress()
        if time.monotonic() - self.last > self.cfg.stall_timeout_s:
            raise ClusterError(f"no frame finished for {self.cfg.stall_timeout_s:g} s (--stall-timeout): "
                               + _pending(self.actors, self.inflight, self.cpus, self.gpus))  # fmt: skip
        return finished

    def _poll_progress(self) -> None:
        """Frames finished inside the running shards count as progress (a long shard is not a stall)."""
        if self.polls:
            done, _ = self.ray.wait(list(self.polls), num_returns=len(self.polls), timeout=0)
            for ref in done:
                i = self.polls.pop(ref)
                try:
                    frames = self.ray.get(ref)["frames"]
                except self.ray.exceptions.RayError:  # an actor restarting: its shards are retried
                    continue
                if frames != self.seen.get(i):
                    self.seen[i], self.last = frames, time.monotonic()
        for i in self.up:
            if i not in self.polls.values():
                self.polls[self.actors[i].progress.options(concurrency_group=self.group).remote()] = i

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a, no_restart=True)


def _shard_args(shards: list[list[FrameRef]], known: Mapping[str, FrameDetections] | None) -> Callable[[int], tuple]:
    def args(k: int) -> tuple:
        refs = shards[k]
        return refs, None if known is None else {r.file: known[r.file] for r in refs if r.file in known}

    return args


def _record(stats: RayStats, i: int, result: dict, sent: tuple) -> None:
    import pickle

    stats.frames += len(result["outcomes"])
    stats.sent_bytes += len(pickle.dumps(sent))
    stats.returned_bytes += len(pickle.dumps(result))
    stats.actor_rss_mb.setdefault(i, []).append((result["frames"], result["rss_mb"]))
    stats.actor_peak_mb[i] = max(stats.actor_peak_mb.get(i, 0.0), result["peak_mb"])


def _compute(todo: list[int], shards: list[list[FrameRef]], store: ShardStore, cfg: RayConfig, engine: EngineConfig,
             models: dict, known: Mapping[str, FrameDetections] | None, stats: RayStats | None,
             progress: Callable[[int], None] | None) -> None:  # fmt: skip
    connect(cfg.address)
    stats = stats if stats is not None else RayStats()
    actors, cpus, gpus = _start_actors(cfg, len(todo), engine, models)
    pool, queue, args = _Pool(actors, cfg, stats, cpus, gpus), deque(todo), _shard_args(shards, known)
    stats.actors = len(actors)
    try:
        while queue or pool.inflight:
            pool.submit(queue, args)
            for k, i, result in pool.wait():
                t = time.perf_counter()
                store.write_json(k, result["outcomes"])
                stats.driver_s += time.perf_counter() - t
                _record(stats, i, result, args(k))
                if progress:
                    progress(len(shards[k]))
        stats.compute_s = time.monotonic() - pool.t0 - stats.startup_s
    except pool.ray.exceptions.ActorDiedError as exc:
        raise ClusterError(f"a Ray actor died and could not be restarted: {str(exc).splitlines()[0]}") from exc
    finally:
        pool.close()


def run_on_ray(frames: list[FrameRef], store: ShardStore, *, detector: str | None, classifier: str | None,
               crop_threshold: float, cfg: RayConfig = RayConfig(), engine: EngineConfig = EngineConfig(),  # noqa: B008
               trust: bool = False, device: str | None = None, resume: bool = False,
               detect_threshold: float | None = None, detections: Mapping[str, FrameDetections] | None = None,
               progress: Callable[[int], None] | None = None,
               stats: RayStats | None = None) -> Iterator[FrameOutcome]:  # fmt: skip
    """Every frame's outcome, in input order, computed on the cluster shard by shard (see the module docstring).

    ``detector`` None: boxes come from ``detections`` (by file; a frame without an entry has none).
    Raises :class:`ClusterError` when the cluster cannot host an actor or the run stalls."""
    if detector is None and detections is None:
        raise ValueError("run_on_ray needs a detector or known detections")
    shards = shard_frames(frames, cfg.sequences_per_shard)
    store.folder.mkdir(parents=True, exist_ok=True)
    todo = [k for k, shard in enumerate(shards) if not (resume and store.done(k, [r.file for r in shard]))]
    log.info("%d shards of up to %d sequences; %d to compute, %d done already", len(shards), cfg.sequences_per_shard,
             len(todo), len(shards) - len(todo))  # fmt: skip
    if todo:
        models = {"detector": detector, "classifier": classifier, "crop_threshold": crop_threshold, "trust": trust,
                  "device": device, "detect_threshold": detect_threshold}  # fmt: skip
        _compute(todo, shards, store, cfg, engine, models, detections, stats, progress)
    for k in range(len(shards)):
        yield from store.read(k)
