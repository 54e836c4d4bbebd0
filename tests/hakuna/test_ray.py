"""``--engine ray`` on real local Ray clusters of two nodes (``ray start --head`` and a second ``ray start
--address`` on this machine), one of 2 + 1 CPUs and one of 1 + 1 (the shape that once hung), each stopped at the
end even when a test fails: the same results as the single-machine engine on both, a worker killed mid-run, a
driver killed then resumed, a cluster that cannot host an actor refused at once, and a stall caught by the
watchdog."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camtrap.mdjson import read_results
from camtrap.metric import read_submission
from hakuna.cli import main
from tests.conftest import hakuna_command

pytestmark = pytest.mark.slow
pytest.importorskip("ray", reason="Ray is installed by `make test` (the dev extra)")
RAY = Path(sys.executable).with_name("ray")


class Cluster(str):
    """The cluster's address (a str), with its shape."""

    def __new__(cls, address: str, shape: tuple[int, int]):
        cluster = super().__new__(cls, address)
        cluster.shape = shape
        return cluster


def only_on(cluster: Cluster, shape: tuple[int, int]) -> None:
    if cluster.shape != shape:
        pytest.skip(f"run on the {shape[0]}+{shape[1]} CPU cluster only")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=[(2, 1), (1, 1)], ids=["2+1cpu", "1+1cpu"])
def ray_cluster(request):
    """A two-node cluster (CPUs of the head, of the second node); pytest runs every test on one shape, stops it,
    then on the next (``ray stop`` ends every Ray process here, so two never run at once)."""
    head_cpus, second_cpus = request.param
    temp = tempfile.mkdtemp(prefix="hkr", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    # One authentication mode for the nodes and the drivers (a token left in ~/.ray by another local cluster
    # would otherwise be required by the head and not offered by the second node).
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    env = dict(os.environ)
    head = [str(RAY), "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", "--resources={\"head\": 1}",
            f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    second = [str(RAY), "start", f"--address=127.0.0.1:{port}", f"--num-cpus={second_cpus}",
              "--resources={\"node2\": 1}", "--disable-usage-stats"]  # fmt: skip
    try:
        subprocess.run(head, check=True, capture_output=True, env=env, timeout=120)
        subprocess.run(second, check=True, capture_output=True, env=env, timeout=120)
        yield Cluster(f"127.0.0.1:{port}", request.param)
    finally:
        import ray

        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
        patch.undo()


@pytest.fixture(scope="module")
def small_test(pipeline_synth, tmp_path_factory):
    from tests.hakuna.test_pipeline import _copy_subset

    return _copy_subset(pipeline_synth.test_data, tmp_path_factory.mktemp("ray-data") / "data", 24)


def _predict(data, models, out, *extra):
    detector, classifier, fusion = models
    return ["predict", "--data", str(data), "--detector", str(detector), "--classifier", str(classifier), "--fusion",
            str(fusion), "--out", str(out), "--results", str(out.with_suffix(".json")), "--device", "cpu",
            "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def models(trained_detector, trained_classifier, fitted_fusion):
    return trained_detector, trained_classifier, fitted_fusion


@pytest.fixture(scope="module")
def local_run(small_test, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "submission.csv"
    assert main(_predict(small_test, models, out, "--workers", "2")) == 0
    return out


def _same(a: Path, b: Path) -> None:
    """Same rows and probabilities within 1e-6; same detections (within the results file's rounding)."""
    sa, sb = read_submission(a), read_submission(b)
    assert list(sa.index) == list(sb.index) and np.abs(sa.to_numpy() - sb.to_numpy()).max() < 1e-6
    ra, rb = read_results(a.with_suffix(".json")), read_results(b.with_suffix(".json"))
    assert [f.file for f in ra.frames] == [f.file for f in rb.frames]
    for fa, fb in zip(ra.frames, rb.frames):
        assert (fa.detections is None) == (fb.detections is None) and fa.failure == fb.failure
        for da, db in zip(fa.detections or (), fb.detections or ()):
            assert da.category == db.category and abs(da.conf - db.conf) <= 1e-3
            assert np.allclose(da.bbox_xywh_norm, db.bbox_xywh_norm, atol=2e-4)
        assert len(fa.detections or ()) == len(fb.detections or ())


def _ray_args(cluster, shards, *extra, per_shard: int = 4):
    return ["--engine", "ray", "--address", str(cluster), "--shards-dir", str(shards), "--sequences-per-shard",
            str(per_shard), "--max-actors", "1", *extra]  # fmt: skip


def test_ray_run_equals_the_local_engine(ray_cluster, small_test, models, local_run, tmp_path, capsys):
    """On both shapes, with as many actors as the cluster hosts (1 + 1 CPUs: two 1-CPU actors, nothing else asks
    for a CPU, so nothing waits for what they hold)."""
    out = tmp_path / "submission.csv"
    args = _ray_args(ray_cluster, tmp_path / "shards", "--max-actors", "4", "--stall-timeout", "120")
    capsys.readouterr()
    assert main(_predict(small_test, models, out, *args)) == 0
    _same(out, local_run)
    n_frames = len(pd.read_csv(small_test / "test_metadata.csv"))
    assert f"24 sequences, {n_frames} frames (" in capsys.readouterr().out  # the summary counts the cluster's frames
    assert len(list((tmp_path / "shards").glob("shard-*.json"))) == 6  # 24 sequences, 4 per shard


def test_a_cluster_that_cannot_host_an_actor_is_refused_at_once(ray_cluster, small_test, models, tmp_path, capsys):
    only_on(ray_cluster, (1, 1))
    t0 = time.monotonic()
    args = _ray_args(ray_cluster, tmp_path / "shards", "--gpus-per-actor", "1")
    assert main(_predict(small_test, models, tmp_path / "submission.csv", *args)) == 2
    err = capsys.readouterr().err
    assert "cannot host one actor" in err and "1 GPU" in err and "1 CPU, 0 GPU" in err, err
    assert time.monotonic() - t0 < 30  # the models load first; no actor is ever waited for


def test_a_stalled_run_trips_the_watchdog(ray_cluster, small_test, models, tmp_path, capsys):
    """Something else holds every CPU of the cluster: the actors can never start, and the run stops after
    --stall-timeout with what Ray reports pending."""
    import ray

    only_on(ray_cluster, (1, 1))
    from hakuna.ray_runner import connect

    connect(str(ray_cluster))

    @ray.remote(num_cpus=1)
    class Hog:
        def ping(self) -> int:
            return 1

    hogs = [Hog.remote() for _ in range(2)]
    try:
        assert ray.get([h.ping.remote() for h in hogs], timeout=60) == [1, 1]
        t0 = time.monotonic()
        args = _ray_args(ray_cluster, tmp_path / "shards", "--stall-timeout", "3")
        assert main(_predict(small_test, models, tmp_path / "submission.csv", *args)) == 2
        err = capsys.readouterr().err
        assert "no frame finished for 3 s" in err and "PENDING_CREATION" in err and "CPU 0 free of 2" in err, err
        assert time.monotonic() - t0 < 30
    finally:
        for h in hogs:
            ray.kill(h)


def test_detect_on_ray_equals_local(ray_cluster, small_test, models, tmp_path):
    only_on(ray_cluster, (2, 1))
    detector = models[0]
    args = ["detect", "--model", str(detector), "--metadata", str(small_test / "test_metadata.csv"), "--image-root",
            str(small_test), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "local.json")]) == 0
    assert main([*args, "--out", str(tmp_path / "ray.json"), *_ray_args(ray_cluster, tmp_path / "shards")]) == 0
    local, ray = json.loads((tmp_path / "local.json").read_text()), json.loads((tmp_path / "ray.json").read_text())
    assert [im["file"] for im in local["images"]] == [im["file"] for im in ray["images"]]
    assert local["info"] == ray["info"]
    _classify_on_ray_equals_local(ray_cluster, small_test, models[1], tmp_path / "local.json", tmp_path)


def _classify_on_ray_equals_local(cluster, images, classifier, results, tmp_path):
    """``classify --detections --engine ray`` (no detect stage: boxes from the file) = the local run."""
    import pandas as pd

    args = ["classify", "--model", str(classifier), "--detections", str(results), "--images", str(images),
            "--device", "cpu", "--no-progress", "--threshold", "0.3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*args, "--out", str(tmp_path / "ray.csv"), *_ray_args(cluster, tmp_path / "cshards")]) == 0
    local, ray = pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert len(local) >= 5 and list(local.columns) == list(ray.columns)
    numbers = [c for c in local.columns if pd.api.types.is_numeric_dtype(local[c])]
    text = [c for c in local.columns if c not in numbers]
    assert text and local[text].equals(ray[text])
    # float32 crop probabilities: an actor runs other thread counts and batch compositions than the local run, so
    # they may differ by a few units in the last place (~1e-7 each near 1), not more
    assert np.abs(local[numbers].to_numpy(float) - ray[numbers].to_numpy(float)).max() < 2e-6


def _hakuna(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(hakuna_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})  # fmt: skip


def _wait_for_shards(folder: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and len(list(folder.glob("shard-*.json"))) < n:
        time.sleep(0.1)


def _actor_workers() -> list[int]:
    """Ray worker processes running one of the pipeline's actors (their process titles say which)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ray::ShardEngine" in title:
                pids.append(int(entry.name))
    return pids


def test_a_killed_worker_does_not_change_the_outcome(ray_cluster, small_test, models, local_run, tmp_path):
    only_on(ray_cluster, (2, 1))
    out, shards = tmp_path / "submission.csv", tmp_path / "shards"
    proc = _hakuna(_predict(small_test, models, out, *_ray_args(ray_cluster, shards)))
    deadline = time.time() + 240  # an actor is killed as soon as one exists: before the run can outpace the test
    while not (victims := _actor_workers()) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victims, "no actor worker found to kill"
    os.kill(victims[0], signal.SIGKILL)
    assert proc.wait(timeout=600) == 0
    _same(out, local_run)


def test_a_killed_driver_resumes_without_redoing_finished_shards(ray_cluster, small_test, models, local_run,
                                                                  tmp_path):  # fmt: skip
    only_on(ray_cluster, (2, 1))
    out, shards = tmp_path / "submission.csv", tmp_path / "shards"
    proc = _hakuna(_predict(small_test, models, out, *_ray_args(ray_cluster, shards, per_shard=1)))
    _wait_for_shards(shards, 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = sorted(shards.glob("shard-*.json"))
    if len(written) == 24 or out.exists():  # the run outpaced the kill (shards come in bursts): cut it back
        for p in written[12:]:
            p.unlink()
        out.unlink(missing_ok=True)
    finished = {p: p.stat().st_mtime_ns for p in shards.glob("shard-*.json")}
    assert 1 <= len(finished) < 24 and not out.exists()
    assert main(_predict(small_test, models, out, *_ray_args(ray_cluster, shards, per_shard=1), "--resume")) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # not recomputed
    _same(out, local_run)
