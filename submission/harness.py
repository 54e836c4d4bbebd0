"""Running a ``submission.zip`` the way the competition's container does, and failing closed where it cannot.

The container runs ``python main.py`` in a fresh folder with ``data/`` mounted read-only and no network
(``docker run --network none``).  Here, the zip is unpacked into a fresh folder and ``main.py`` runs in its own
network and mount namespaces (``unshare``): no network interface but loopback, ``data/`` a read-only bind
mount of the data folder, and every other file system read-only except the run's own folder.  Where the
system cannot make those namespaces the run is refused, unless the caller allows it (``allow_network``); then
it runs unconfined, with a warning.  Either way the data folder is checked unchanged afterwards, and a run
that wrote class priors for any reason other than the time budget is reported as a failure, with the counts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from camtrap.fileio import DataError

__all__ = ["HarnessError", "SandboxUnavailable", "sandbox_command", "run_submission", "snapshot"]

log = logging.getLogger(__name__)
STATUS_FILE = "submission-status.json"
_MOUNTS = """set -e
mount --make-rprivate /
mount --bind "$HAKUNA_WORK" "$HAKUNA_WORK"
mount --bind "$HAKUNA_DATA_SRC" "$HAKUNA_WORK/data"
mount -o remount,bind,ro "$HAKUNA_WORK/data"
mount -o remount,bind,ro /
cd "$HAKUNA_WORK"
exec "$@"
"""


class HarnessError(RuntimeError):
    """The submission ran but did something the container would not allow, or fell back to priors."""


class SandboxUnavailable(HarnessError):
    """No network/mount namespace can be made here; the message says how to proceed."""


def _can(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def sandbox_command(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped to run with no network, ``$HAKUNA_WORK/data`` read-only and the rest of the file system
    read-only except ``$HAKUNA_WORK``.

    Raises:
        SandboxUnavailable: ``unshare`` is missing or namespaces are not allowed here.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxUnavailable("cannot isolate the run: `unshare` (util-linux) is not on PATH")
    probe = ["sh", "-c", "mount --make-rprivate / && true"]
    for flags in (["-n", "-m"], ["-r", "-n", "-m"]):  # as root, then in a user namespace
        if _can([unshare, *flags, *probe]):
            return [unshare, *flags, "sh", "-c", _MOUNTS, "sh", *cmd]
    raise SandboxUnavailable("cannot isolate the run: this system does not allow network and mount namespaces here "
                             "(run as root, or enable unprivileged user namespaces)")  # fmt: skip


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime, ctime) of every file and folder under ``folder``; ctime changes on any write or chmod."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def _unpack(zip_path: Path, work: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(work)  # zipfile drops absolute paths and '..' from member names
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(zip_path, f"not a readable zip file ({exc})") from exc
    if not (work / "main.py").is_file():
        raise DataError(zip_path, "no main.py at the root of the zip")


def _check_status(work: Path) -> None:
    path = work / STATUS_FILE
    if not path.exists():
        return
    status = json.loads(path.read_text())
    if status.get("pipeline_failed"):
        raise HarnessError(f"the pipeline failed inside the run ({status['pipeline_failed']}); all "
                           f"{status.get('prior_only')} rows are class priors")  # fmt: skip
    fallback = int(status.get("prior_only", 0)) - int(status.get("prior_budget", 0))
    if fallback > 0:
        raise HarnessError(f"{fallback} of {status.get('sequences')} rows fell back to class priors for reasons other "
                           f"than the time budget ({status.get('prior_unlisted', 0)} sequences with no image listed, "
                           f"{status.get('prior_unreadable', 0)} with no readable frame)")  # fmt: skip


def run_submission(zip_path: Path, data_dir: Path, out_csv: Path, *, allow_network: bool = False,
                   time_budget_s: float | None = None, python: str = sys.executable) -> Path:
    """Unpack ``zip_path`` into a fresh folder, run ``python main.py`` there against ``data_dir`` (see the module
    docstring), copy ``submission.csv`` to ``out_csv`` (its log beside it, ``.log``) and check the run.

    Raises:
        SandboxUnavailable: no isolation possible and ``allow_network`` not set (nothing was run).
        HarnessError: main.py failed or wrote no CSV, the data folder changed, or rows fell back to priors for
            a reason other than the time budget (the CSV is still copied out).
        DataError: the zip is not a zip or has no main.py.
    """
    data_dir = Path(data_dir).resolve()
    cmd = [python, "main.py"]
    try:
        cmd = sandbox_command(cmd)
    except SandboxUnavailable as exc:
        if not allow_network:
            raise SandboxUnavailable(f"{exc}; refusing to run unconfined (pass --allow-network to run anyway)") from exc
        log.warning("%s; running with the network and a writable data folder, as --allow-network asks", exc)
    before = snapshot(data_dir)
    with tempfile.TemporaryDirectory(prefix="hakuna-run-") as tmp:
        work = Path(tmp).resolve()
        _unpack(Path(zip_path), work)
        (work / "tmp").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAKUNA_", "PYTHONPATH"))}
        env.update(PYTHONNOUSERSITE="1", TMPDIR=str(work / "tmp"), HAKUNA_WORK=str(work), HAKUNA_DATA_SRC=str(data_dir))
        if time_budget_s is not None:
            env["HAKUNA_TIME_BUDGET_S"] = str(time_budget_s)
        if cmd[0] == python:  # unconfined: data/ is a link to the data folder
            (work / "data").symlink_to(data_dir, target_is_directory=True)
        else:
            (work / "data").mkdir()
        proc = subprocess.run(cmd, cwd=work, env=env, text=True, capture_output=True)
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        log_path = out_csv.with_suffix(".log")
        log_path.write_text(proc.stdout + proc.stderr)
        produced = work / "submission.csv"
        if proc.returncode != 0 or not produced.exists():
            raise HarnessError(f"main.py failed (exit {proc.returncode}); its log is in {log_path}:\n"
                               f"{(proc.stdout + proc.stderr)[-2000:]}")  # fmt: skip
        shutil.copyfile(produced, out_csv)
        if snapshot(data_dir) != before:
            raise HarnessError(f"the run changed the data folder {data_dir} (the container mounts it read-only)")
        _check_status(work)
    return out_csv
