"""Hostile ``main.py`` files against the harness's sandbox (Bubblewrap), run by the caller (root in CI and most
containers) and again, where it can be arranged, by an unprivileged user (``nobody`` through ``setpriv``).

Each escape attempt records what happened and still writes a valid ``submission.csv``, so a run that "succeeds"
proves the attempt ran; the test then checks the outcome from outside: no marker file anywhere outside the run
folder, no connection on the host's loopback, ``data/`` byte-identical, no run folder left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from camtrap.fileio import DataError
from camtrap.labels import COLUMNS
from camtrap.metric import SubmissionError
from hakuna.cli import main as hakuna_main
from submission.harness import HarnessError, Limits, SandboxUnavailable, run_submission, sandbox_command

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
# The hostile main.py files need only the standard library: the system's interpreter, which nobody can run
# (a virtualenv under /root cannot be), so the unprivileged runs work too.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# Each attempt is a function body; the prelude runs them all, prints {name: outcome} and writes a valid CSV.
PRELUDE = """
import ctypes, glob, json, os, shutil, socket, subprocess, sys
OUTSIDE, PORT = {outside!r}, {port}
libc = ctypes.CDLL(None, use_errno=True)
results = {{}}
def attempt(name, act):
    try:
        results[name] = repr(act())
    except Exception as exc:
        results[name] = type(exc).__name__ + ": " + str(exc)[:200]
def sh(cmd):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    return p.returncode, p.stderr[-200:]
def write(path):
    with open(path, "w") as f:
        f.write("escaped")
    return "written " + path
"""
EPILOGUE = """
print("RESULTS " + json.dumps(results))
shutil.copyfile("data/submission_format.csv", "submission.csv")
"""
ESCAPES = {
    # mount / read-write again (as root without a user namespace this worked), then write outside.
    "remount-root": """
attempt("mount", lambda: sh("mount -o remount,bind,rw / && echo escaped > " + OUTSIDE))
attempt("nested-userns", lambda: sh("unshare -Urm sh -c 'mount -o remount,bind,rw / && echo x > " + OUTSIDE + "'"))
attempt("write", lambda: write(OUTSIDE))
attempt("write-root", lambda: write("/" + os.path.basename(OUTSIDE)))
""",
    # the host's /tmp through the parent's root (the harness's process, in a shared pid namespace).
    "proc-root": """
for pid in [os.getppid(), 1] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    attempt(f"proc-{pid}", lambda: write(f"/proc/{pid}/root{OUTSIDE}"))
""",
    "dev-shm": """
attempt("shm", lambda: write("/dev/shm/" + os.path.basename(OUTSIDE)))
attempt("tmp", lambda: write(OUTSIDE))
""",
    # the caller's environment (tokens, credentials) is not passed on.
    "environment": """
attempt("env", lambda: [k + "=" + v for k, v in os.environ.items() if "SECRET" in k])
""",
    # join the parent's network namespace (setns, CLONE_NEWNET) and connect to the host's listener.
    "setns-network": """
def join(pid):
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")
    return socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
for pid in [os.getppid(), 1] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    attempt(f"setns-{pid}", lambda: join(pid))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=1).close())
attempt("nsenter", lambda: sh(f"nsenter --net=/proc/{os.getppid()}/ns/net true"))
""",
    # remount data/ read-write and delete the metadata.
    "data-delete": """
attempt("remount-data", lambda: sh("mount -o remount,bind,rw data"))
attempt("umount-data", lambda: sh("umount -l data"))
attempt("delete", lambda: os.remove("data/test_metadata.csv"))
attempt("chmod", lambda: os.chmod("data/test_metadata.csv", 0o777))
attempt("write", lambda: write("data/new.txt"))
""",
}


def _caller_can_sandbox(base: Path) -> None:
    (base / "probe").mkdir()
    try:
        sandbox_command([PYTHON], base / "probe", base / "probe")
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox on this machine: {exc}")


@pytest.fixture()
def base():
    """A folder every user can read (the unprivileged run needs it) under which runs make their folders."""
    folder = Path(tempfile.mkdtemp(prefix="hakuna-sandbox-test-"))
    folder.chmod(0o755)
    (folder / "runs").mkdir(mode=0o777)
    (folder / "runs").chmod(0o777)
    _caller_can_sandbox(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    ids = ["SER_S9#A#1#1", "SER_S9#A#1#2"]
    pd.DataFrame({"seq_id": ids, "file_name": ["img0.jpg", "img1.jpg"], "datetime": ""}).to_csv(
        folder / "test_metadata.csv", index=False)  # fmt: skip
    fmt = pd.DataFrame(0.5, index=pd.Index(ids, name="seq_id"), columns=list(COLUMNS))
    fmt.to_csv(folder / "submission_format.csv")
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _zip(path: Path, main: str, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", main)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    path.chmod(0o644)
    return path


@pytest.fixture()
def listener():
    """A TCP server on the host's loopback that records connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                seen.append(1)
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


_AS_NOBODY = """
import json, sys, tempfile
from pathlib import Path
from submission.harness import Limits, run_submission
tempfile.tempdir = sys.argv[4]
try:
    run_submission(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), limits=Limits(time_s=float(sys.argv[5])),
                   python=sys.argv[6])
    print(json.dumps({"ok": True}))
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc)}))
"""


def _run(user: str, base: Path, zip_path: Path, data: Path, out: Path, time_s: float = 60.0) -> dict:
    """Run the harness as ``user`` (``caller``: in this process; ``nobody``: a child dropped to nobody)."""
    if user == "caller":
        tempfile.tempdir, saved = str(base / "runs"), tempfile.tempdir
        try:
            run_submission(zip_path, data, out, limits=Limits(time_s=time_s), python=PYTHON)
            return {"ok": True}
        except (HarnessError, DataError, SubmissionError) as exc:
            return {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        finally:
            tempfile.tempdir = saved
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the harness as an unprivileged user needs root and setpriv here")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.parent.chmod(0o777)
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", sys.executable, "-c",
           _AS_NOBODY, str(zip_path), str(data), str(out), str(base / "runs"), str(time_s), PYTHON]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(base)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=base, timeout=time_s + 60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("type") == "SandboxUnavailable":
        pytest.skip(f"no sandbox for an unprivileged user here: {result['message']}")
    return result


USERS = ["caller", "nobody"]


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_escape_attempts_change_nothing_outside_the_run(escape, user, base, listener, monkeypatch):
    port, seen = listener
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "escaped")
    data = _data(base / "data")
    outside = f"/tmp/hakuna-escape-{uuid.uuid4().hex}"  # on the host's /tmp, which the sandbox replaces
    targets = [Path(outside), Path("/dev/shm") / Path(outside).name, Path("/") / Path(outside).name]
    main = PRELUDE.format(outside=outside, port=port) + ESCAPES[escape] + EPILOGUE
    before = _digest(data)
    out = base / "out" / "submission.csv"
    result = _run(user, base, _zip(base / "evil.zip", main), data, out)
    log = out.with_suffix(".log").read_text()
    assert result["ok"], (result, log)
    attempts = json.loads(log.split("RESULTS ", 1)[1].splitlines()[0])
    assert attempts and all("escaped" not in v for v in attempts.values()), attempts
    if escape == "data-delete":
        assert "PermissionError" in attempts["delete"] or "OSError" in attempts["delete"], attempts
    assert not any(t.exists() for t in targets), targets
    assert not seen, "a connection reached the host's loopback"
    assert _digest(data) == before
    assert list((base / "runs").iterdir()) == []


@pytest.mark.parametrize("user", USERS)
def test_a_sleeper_is_killed_at_the_time_limit(user, base):
    data = _data(base / "data")
    tag = f"36{uuid.uuid4().int % 10**6:06d}"  # a unique sleep duration to find the processes by
    main = f"import subprocess, time; subprocess.Popen(['sleep', '{tag}']); time.sleep({tag})"
    start = time.monotonic()
    result = _run(user, base, _zip(base / "sleeper.zip", main), data, base / "out" / "s.csv", time_s=2.0)
    assert not result["ok"] and "time limit" in result["message"], result
    assert time.monotonic() - start < 30
    time.sleep(0.2)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith(f"sleep {tag}")]
    assert left == [], "processes of the run survived its time limit"
    assert list((base / "runs").iterdir()) == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_zip_bombs_are_refused_before_extraction(base):
    data = _data(base / "data")
    bomb = _zip(base / "bomb.zip", "print('never')", {"assets/zeros.bin": bytes(64 << 20)})
    assert bomb.stat().st_size < 1 << 20
    result = _run("caller", base, bomb, data, base / "out" / "s.csv")
    assert not result["ok"] and "inflates" in result["message"] and "zip bomb" in result["message"], result
    big = _zip(base / "big.zip", "print('never')", {"assets/random.bin": os.urandom(2 << 20)})
    tempfile.tempdir, saved = str(base / "runs"), tempfile.tempdir
    try:
        with pytest.raises(DataError, match="unpacks to .* more than the 1048576 allowed"):
            run_submission(big, data, base / "out" / "s.csv", limits=Limits(unpacked_bytes=1 << 20), python=PYTHON)
    finally:
        tempfile.tempdir = saved
    assert list((base / "runs").iterdir()) == []


@pytest.mark.parametrize("case", ["garbage-csv", "wrong-rows", "status-not-json", "status-not-object",
                                  "status-bad-count", "csv-link", "status-fifo"])  # fmt: skip
def test_bad_results_are_a_one_line_error(case, base, capsys):
    data = _data(base / "data")
    csv = {"garbage-csv": "\x00\x01 not, a\ncsv\"", "wrong-rows": "seq_id," + ",".join(COLUMNS) + "\nX" + ",0" * 54}
    status = {"status-not-json": "{not json", "status-not-object": "[1, 2]", "status-bad-count": '{"prior_only": "a"}'}
    main = ("import shutil; from pathlib import Path\n"
            "shutil.copyfile('data/submission_format.csv', 'submission.csv')\n"
            f"if {case in csv}: Path('submission.csv').write_text({csv.get(case, '')!r})\n"
            f"if {case in status}: Path('submission-status.json').write_text({status.get(case, '')!r})\n")  # fmt: skip
    if case == "csv-link":  # the harness must not read, with its rights, a file main.py could not
        main += "import os; os.remove('submission.csv'); os.symlink('/etc/shadow', 'submission.csv')\n"
    if case == "status-fifo":  # nor block forever on a pipe
        main += "import os; os.mkfifo('submission-status.json')\n"
    zip_path = _zip(base / "bad.zip", main)
    tempfile.tempdir, saved = str(base / "runs"), tempfile.tempdir
    try:
        code = hakuna_main(["run-submission", str(zip_path), "--data", str(data), "--out", str(base / "o" / "s.csv")])
    finally:
        tempfile.tempdir = saved
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert list((base / "runs").iterdir()) == []


FLOODS = {
    # stdout without end: the log (on the caller's disk) grew 1.4 GB in 3 s before the file size limit.
    "log": ("import sys\nwhile True:\n    sys.stdout.buffer.write(b'x' * (1 << 16))\n", "log reached the limit"),
    "file": ("f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 16))\n", "File too large"),
    # a bounded fork bomb: 200 sleeping children once all started; now the 60-odd allowed, then EAGAIN.
    "fork": ("import os, shutil, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n"
             "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as exc:\n"
             "    print('FORK FAILED', n, exc)\nshutil.copyfile('data/submission_format.csv', 'submission.csv')\n", ""),
}


@pytest.mark.parametrize("flood", sorted(FLOODS))
def test_output_and_processes_are_bounded(flood, base):
    data = _data(base / "data")
    main, message = FLOODS[flood]
    out = base / "out" / "s.csv"
    tempfile.tempdir, saved = str(base / "runs"), tempfile.tempdir
    try:
        run_submission(_zip(base / "z.zip", main), data, out, python=PYTHON,
                       limits=Limits(time_s=20.0, file_bytes=1 << 20, processes=64))  # fmt: skip
        result = ""
    except HarnessError as exc:
        result = str(exc)
    finally:
        tempfile.tempdir = saved
    assert out.with_suffix(".log").stat().st_size <= 1 << 20
    if flood == "fork":
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("the process limit applies when the run's user is nobody (the harness as root)")
        assert "FORK FAILED" in out.with_suffix(".log").read_text(), result
    else:
        assert message in result, result
    assert list((base / "runs").iterdir()) == []
