"""What ``submission.zip`` carries: the runtime code only (no training, download or application code), closed
under the imports the runner makes, and importable from the zip alone without torch."""

import subprocess
import sys
import zipfile

from submission.package import RUNTIME_FILES, write_code

# Modules that must never ship: training, fitting, downloads, synthetic data, building and harnessing zips.
TRAINING = ("detector/train.py", "classifier/train.py", "classifier/fewshot.py", "classifier/finetune.py",
            "classifier/distributed.py", "classifier/cv.py", "classifier/probe.py", "classifier/recipes.py",
            "classifier/data.py", "classifier/config.py", "camtrap/lila_fetch.py",
            "camtrap/download.py", "camtrap/lila.py", "submission/package.py", "submission/harness.py")  # fmt: skip
# What run_packaged imports (submission/runner.py) and what loading ONNX models imports on first use.
ENTRY = ("submission.runner", "camtrap.engine", "classifier.predict", "classifier.onnx", "detector.model",
         "detector.weights", "fusion", "hakuna.pipeline", "camtrap.fileio")  # fmt: skip
CHECK = f"""
import importlib, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "ultralytics", "timm"):
            raise ImportError("the offline package must not import " + name)
sys.meta_path.insert(0, NoTorch())
code = sys.argv[1]
sys.path.insert(0, code)
for name in {ENTRY!r}:
    importlib.import_module(name)
ours = ("camtrap", "detector", "classifier", "fusion", "hakuna", "submission")
outside = [m for m, mod in sys.modules.items() if m.split(".")[0] in ours and
           not str(getattr(mod, "__file__", code)).startswith(code)]
assert not outside, outside
print(sorted(m for m in sys.modules if m.split(".")[0] in ours))
"""


def _code_zip(tmp_path):
    path = tmp_path / "code.zip"
    with zipfile.ZipFile(path, "w") as zf:
        write_code(zf)
    return path


def test_the_zip_holds_the_runtime_list_and_no_training_module(tmp_path):
    names = zipfile.ZipFile(_code_zip(tmp_path)).namelist()
    code = sorted(n.removeprefix("code/") for n in names if n.startswith("code/"))
    assert code == sorted(RUNTIME_FILES) and "main.py" in names
    assert not set(code) & set(TRAINING)
    assert not [n for n in code if n.startswith(("camtrap/synth/", "hakuna/")) and n not in
                ("hakuna/__init__.py", "hakuna/pipeline.py")]  # fmt: skip


def test_the_runtime_code_imports_from_the_zip_alone_without_torch(tmp_path):
    with zipfile.ZipFile(_code_zip(tmp_path)) as zf:
        zf.extractall(tmp_path / "pkg")
    code = str(tmp_path / "pkg" / "code")
    out = subprocess.run([sys.executable, "-c", CHECK, code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = {m.replace(".", "/") for m in eval(out.stdout)}  # noqa: S307 - our own subprocess's repr of a list
    assert {f.removesuffix(".py").removesuffix("/__init__") for f in RUNTIME_FILES} >= loaded
