"""Running a ``submission.zip`` the way the competition's container does, and failing closed where it cannot.

The container runs ``python main.py`` in a fresh folder with ``data/`` mounted read-only and no network
(``docker run --network none``).  Here the zip is unpacked (within size and ratio limits) into a fresh folder and
``main.py`` runs under Bubblewrap (``bwrap``, the sandbox Flatpak uses): in new user, pid, network, mount, ipc,
uts and cgroup namespaces, with a fresh ``/proc``, as ``nobody`` with no capabilities (also when the harness
runs as root), on a read-only view of ``/`` where only the run folder is writable, ``data/`` a read-only bind
mount the child cannot remount, ``/tmp`` and ``/dev/shm`` private, and only an allowlist of environment
variables passed on.  A wall-clock limit kills the whole process tree; no file it writes (its log included) may
pass ``Limits.file_bytes`` (``RLIMIT_FSIZE``), and as ``nobody`` it may run at most ``Limits.processes`` processes
and threads (``RLIMIT_NPROC``: a fork bomb fails).  Where Bubblewrap is missing or cannot make its namespaces the
run is refused, unless the caller allows it (``allow_network``); then it runs unconfined, with a warning.  Either
way the data folder is checked unchanged afterwards, the CSV is validated like ``hakuna score`` validates a
submission, a run that wrote class priors for any reason other than the time budget is a failure, and the run
folder is removed on every path.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from camtrap.fileio import DataError, read_json

__all__ = ["HarnessError", "SandboxUnavailable", "Limits", "sandbox_command", "run_submission", "snapshot",
           "unpack"]  # fmt: skip

log = logging.getLogger(__name__)
STATUS_FILE = "submission-status.json"
NOBODY = 65534
COMPETITION_TIME_LIMIT_S = 8 * 3600.0  # the competition's limit on one run
# The only environment main.py sees (besides LC_* and NVIDIA_*): no tokens or credentials of the caller's.
_PASSED_ENV = {"PATH", "LANG", "TZ", "TERM", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS"}


@dataclass(frozen=True)
class Limits:
    """What a run may take: wall-clock seconds, and what its zip may unpack to."""

    time_s: float = COMPETITION_TIME_LIMIT_S
    unpacked_bytes: int = 16 << 30  # total size of the zip's members once extracted
    members: int = 100_000
    ratio: float = 200.0  # largest uncompressed/compressed size of one member (over 1 MiB)
    result_bytes: int = 2 << 30  # largest submission.csv (or status file) the harness reads back
    file_bytes: int = 8 << 30  # largest file the run may write, its log included (a write past it fails)
    processes: int = 4096  # most processes + threads at once when the run's user is nobody (outside, too)


class HarnessError(RuntimeError):
    """The submission ran but did something the container would not allow, failed, or fell back to priors."""


class SandboxUnavailable(HarnessError):
    """No sandbox can be made here; the message says how to proceed."""


def _bwrap_args(work: str, data: str) -> list[str]:
    """Bubblewrap's options for a run in ``work`` with ``data`` mounted read-only at ``work/data``.

    Options as bwrap(1) of bubblewrap 0.8 documents them; mounts apply in order, so the run folder and data
    are bound after the private ``/tmp``, and ``/run`` (where services keep their sockets) is an empty tmpfs.
    """
    gpus = [a for dev in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri"))
            for a in ("--dev-bind-try", dev, dev)]  # fmt: skip
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--dev", "/dev", *gpus, "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm",
            "--tmpfs", "/run", "--bind", work, work, "--ro-bind", data, f"{work}/data", "--chdir", work]  # fmt: skip


def sandbox_command(cmd: list[str], work: str | os.PathLike[str], data: str | os.PathLike[str]) \
        -> tuple[list[str], int | None]:  # fmt: skip
    """``cmd`` wrapped to run under Bubblewrap in ``work`` (see the module docstring), and the uid that must own
    ``work`` (None: the caller's).  As root, bwrap itself runs as ``nobody`` (``setpriv``) where ``nobody`` can
    read ``data`` and ``cmd[0]``, so that the sandbox is nobody's outside it too; else as the caller.

    Raises:
        SandboxUnavailable: ``bwrap`` is missing or cannot make its namespaces here.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("cannot isolate the run: Bubblewrap (`bwrap`) is not on PATH (`make` installs it "
                                 "as root with apt-get; or `apt-get install bubblewrap`)")  # fmt: skip
    args = [bwrap, *_bwrap_args(str(work), str(data))]
    setpriv = shutil.which("setpriv")
    modes: list[tuple[list[str], int | None]] = [(args, None)]
    if os.geteuid() == 0 and setpriv:
        drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
        modes.insert(0, ([*drop, *args], NOBODY))
    why = "no message"
    for wrapped, owner in modes:
        try:
            os.chown(work, owner if owner is not None else os.geteuid(), -1)
            probe = subprocess.run([*wrapped, "--", "test", "-x", cmd[0]], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
            continue
        if probe.returncode == 0:
            log.info("sandbox: bwrap as %s", "nobody" if owner is not None else f"uid {os.geteuid()}")
            return [*wrapped, "--", *cmd], owner
        why = (probe.stderr.strip().splitlines() or ["no message"])[-1]
    raise SandboxUnavailable(f"cannot isolate the run: bwrap cannot make its namespaces here ({why}; enable "
                             "unprivileged user namespaces, or run as root)")  # fmt: skip


def _chown_tree(folder: Path, uid: int) -> None:
    os.chown(folder, uid, uid)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(Path(root) / name, uid, uid, follow_symlinks=False)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime, ctime) of every file and folder under ``folder``; ctime changes on any write or chmod."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def unpack(zip_path: Path, work: Path, limits: Limits = Limits()) -> None:
    """Extract ``zip_path`` into ``work`` after checking its member count, total size and compression ratios.

    The sizes checked are the ones the zip declares; zipfile never extracts more than a member's declared size
    (``ZipExtFile`` stops at ``file_size`` and raises on a CRC mismatch), and drops absolute paths and ``..``.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            if len(infos) > limits.members:
                raise DataError(zip_path, f"{len(infos)} members, more than the {limits.members} allowed")
            total = sum(i.file_size for i in infos)
            if total > limits.unpacked_bytes:
                raise DataError(zip_path, f"unpacks to {total} bytes, more than the {limits.unpacked_bytes} allowed")
            for i in infos:
                ratio = i.file_size / max(i.compress_size, 1)
                if i.file_size > 1 << 20 and ratio > limits.ratio:
                    raise DataError(zip_path, f"member {i.filename!r} inflates {ratio:.0f}-fold, more than the "
                                              f"{limits.ratio:.0f} allowed (a zip bomb?)")  # fmt: skip
            zf.extractall(work)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DataError(zip_path, f"not a readable zip file ({exc})") from exc
    if not (work / "main.py").is_file():
        raise DataError(zip_path, "no main.py at the root of the zip")


def _number(status: dict, key: str) -> int:
    value = status.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HarnessError(f"{STATUS_FILE}: {key} is {value!r}, not a count")
    return value


def _check_result_file(path: Path, limits: Limits) -> None:
    """The harness reads what main.py wrote with the caller's rights: only a plain file (not a link to a file
    main.py could not read itself, not a pipe that never ends), of a bounded size."""
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise HarnessError(f"the run's {path.name} is not a plain file (a link, a pipe or a folder); refused")
    if st.st_size > limits.result_bytes:
        raise HarnessError(f"the run's {path.name} is {st.st_size} bytes, more than the {limits.result_bytes} allowed")


def _environment(work: Path, time_budget_s: float | None) -> dict[str, str]:
    """main.py's environment: an allowlist of the caller's, plus where to put temporary files."""
    env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith(("LC_", "NVIDIA_"))}
    env.update(PYTHONNOUSERSITE="1", TMPDIR=str(work / "tmp"), HOME=str(work / "tmp"))
    if time_budget_s is not None:
        env["HAKUNA_TIME_BUDGET_S"] = str(time_budget_s)
    return env


def _check_status(work: Path, limits: Limits) -> None:
    path = work / STATUS_FILE
    if not os.path.lexists(path):
        return
    _check_result_file(path, limits)
    try:
        status = read_json(path)
    except DataError as exc:
        raise HarnessError(f"the run wrote a malformed {STATUS_FILE}: {exc.message}") from exc
    if not isinstance(status, dict):
        raise HarnessError(f"the run wrote a malformed {STATUS_FILE}: not a JSON object")
    if status.get("pipeline_failed"):
        raise HarnessError(f"the pipeline failed inside the run ({str(status['pipeline_failed'])[:500]}); all "
                           f"{_number(status, 'prior_only')} rows are class priors")  # fmt: skip
    fallback = _number(status, "prior_only") - _number(status, "prior_budget")
    if fallback > 0:
        raise HarnessError(f"{fallback} of {_number(status, 'sequences')} rows fell back to class priors for reasons "
                           f"other than the time budget ({_number(status, 'prior_unlisted')} sequences with no image "
                           f"listed, {_number(status, 'prior_unreadable')} with no readable frame)")  # fmt: skip


def _check_csv(produced: Path, data_dir: Path) -> None:
    """Validate the run's CSV as ``hakuna score`` would, against the rows of ``data/submission_format.csv``."""
    from camtrap.metric import SubmissionError, read_submission, validate_submission

    expected = read_submission(data_dir / "submission_format.csv").index
    try:
        validate_submission(read_submission(produced), expected, source="the run's submission.csv")
    except DataError as exc:
        raise SubmissionError(f"the run's submission.csv: {exc.message}") from exc


def _set_rlimits(limits: Limits, as_nobody: bool) -> None:
    """In the child before it runs bwrap: the file size limit, and (when the run's user is nobody, whose processes
    are all the run's) the process limit; the caller's own processes would count against it otherwise."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    if as_nobody:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def _run(cmd: list[str], work: Path, env: dict, log_path: Path, limits: Limits, as_nobody: bool = False) -> int:
    """Run ``cmd`` in its own session, output to ``log_path``, under :func:`_set_rlimits`; past the time limit the
    process group is killed."""
    with open(log_path, "wb") as out:
        limit = functools.partial(_set_rlimits, limits, as_nobody)
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=limit)  # fmt: skip
        try:
            return proc.wait(timeout=limits.time_s)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"main.py ran past the time limit ({limits.time_s:g} s) and was killed") from None
        finally:
            # The whole session: bwrap's pid namespace dies with it; unconfined, whatever main.py left running.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tail(path: Path, n: int = 2000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - n))
        return f.read().decode("utf-8", "replace")


def run_submission(zip_path: Path, data_dir: Path, out_csv: Path, *, allow_network: bool = False,
                   time_budget_s: float | None = None, python: str = sys.executable,
                   limits: Limits = Limits()) -> Path:  # fmt: skip
    """Unpack ``zip_path`` into a fresh folder, run ``python main.py`` there against ``data_dir`` (see the module
    docstring), copy ``submission.csv`` to ``out_csv`` (its log beside it, ``.log``) and check the run.

    Raises:
        SandboxUnavailable: no isolation possible and ``allow_network`` not set (nothing was run).
        HarnessError: main.py failed, ran past ``limits.time_s`` or wrote no CSV, the data folder changed, or
            rows fell back to priors for a reason other than the time budget (the CSV is still copied out).
        SubmissionError: the CSV is not a valid submission for ``data_dir``.
        DataError: the zip is not a zip, has no main.py, or is over the limits.
    """
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise DataError(data_dir, "the data folder does not exist (or is not a folder)")
    out_csv = Path(out_csv)
    before = snapshot(data_dir)
    with tempfile.TemporaryDirectory(prefix="hakuna-run-") as tmp:
        work = Path(tmp).resolve()
        cmd, owner = [python, "main.py"], None
        try:
            cmd, owner = sandbox_command(cmd, work, data_dir)
        except SandboxUnavailable as exc:
            if not allow_network:
                raise SandboxUnavailable(f"{exc}; refusing to run unconfined (pass --allow-network to run anyway)") \
                    from exc  # fmt: skip
            log.warning("%s; running with the network and a writable data folder, as --allow-network asks", exc)
        unpack(Path(zip_path), work, limits)
        (work / "tmp").mkdir(exist_ok=True)
        (work / "data").mkdir(exist_ok=True)  # the mount point (a zip's own data/ is hidden under the mount)
        if owner is not None:
            _chown_tree(work, owner)
        env = _environment(work, time_budget_s)
        if cmd[0] == python:  # unconfined: data/ is a link to the data folder
            shutil.rmtree(work / "data")
            (work / "data").symlink_to(data_dir, target_is_directory=True)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        log_path = out_csv.with_suffix(".log")
        try:
            code = _run(cmd, work, env, log_path, limits, as_nobody=owner is not None)
        finally:
            if snapshot(data_dir) != before:
                raise HarnessError(f"the run changed the data folder {data_dir} (the container mounts it read-only)")
        produced = work / "submission.csv"
        if log_path.stat().st_size >= limits.file_bytes:
            raise HarnessError(f"main.py's log reached the limit of {limits.file_bytes} bytes per file (exit {code}); "
                               f"its start is in {log_path}")  # fmt: skip
        if code != 0 or not os.path.lexists(produced):
            raise HarnessError(f"main.py failed (exit {code}); its log is in {log_path}:\n{_tail(log_path)}")
        _check_result_file(produced, limits)
        shutil.copyfile(produced, out_csv)
        _check_csv(produced, data_dir)
        _check_status(work, limits)
    return out_csv
