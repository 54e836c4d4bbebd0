"""Training on several processes (``hakuna classifier train --nproc-per-node N``): PyTorch DistributedDataParallel,
gloo on CPUs, NCCL on GPUs (one GPU per process).

Every process trains on its own slice of each epoch's balanced sample (:class:`BalancedDistributedSampler`: the
same square-root inverse-frequency draw as a single process, seeded by epoch, dealt out round-robin), gradients
are averaged, and process 0 evaluates, logs and writes the checkpoints; a resumed run loads them in every process.
Processes are started with ``torch.multiprocessing`` and die with their parent (a killed run leaves no orphan
training on).  Across machines, start one ``hakuna`` per node with ``torchrun``'s environment instead.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Dist", "BalancedDistributedSampler", "launch"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the group (rank 0 of 1 for a plain run)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


class BalancedDistributedSampler(torch.utils.data.Sampler[int]):
    """Each epoch: ``n`` indices drawn with probability ``weights`` (uniformly without replacement when None),
    seeded by (seed, epoch), and this rank's share of them, padded so every rank has the same number."""

    def __init__(self, weights: np.ndarray | None, n: int, dist: Dist, seed: int) -> None:
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.n, self.dist, self.seed, self.epoch = n, dist, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.dist.world)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        total = len(self) * self.dist.world
        order = torch.cat([order, order[: total - self.n]]) if total > self.n else order
        return iter(order[self.dist.rank :: self.dist.world].tolist())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _entry(rank: int, world: int, port: int, backend: str, args: tuple, kwargs: dict) -> None:
    _die_with_parent()
    from classifier.train import train

    torch.distributed.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train(*args, dist=Dist(rank, world), **kwargs)
    finally:
        torch.distributed.destroy_process_group()


def launch(nproc: int, samples, out: Path, cfg, *, cache_dir: Path, resume: bool = False) -> None:
    """Train with ``nproc`` processes on this machine (gloo on CPU, NCCL when ``cfg.device`` is CUDA)."""
    import torch.multiprocessing as mp

    from classifier.data import decode_cached
    from classifier.train import _spec

    decode_cached(samples, _spec(samples, cfg), cache_dir)  # once, here: the processes then only read the cache
    backend = "nccl" if (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") else "gloo"
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    mp.start_processes(_entry, args=(nproc, _free_port(), backend, (samples, out, cfg),
                                     {"cache_dir": cache_dir, "resume": resume}),
                       nprocs=nproc, start_method="spawn", join=True)  # fmt: skip
