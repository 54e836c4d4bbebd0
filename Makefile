# Two entry points (see README): `make demo` and `make test`.  Both create .venv and install idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= demo-out

MEGADETECTOR := .megadetector
MEGADETECTOR_VERSION := 10.0.28
YOLOV5 := .yolov5

.PHONY: demo test test-fast lint bench clean browser sandbox wheelhouse gpu-check

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) sandbox
	$(BIN)/hakuna demo --out $(DEMO_OUT)

test: $(STAMP) browser sandbox $(MEGADETECTOR) $(YOLOV5)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# Everyday checks: no model training, a few minutes.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

# The official megadetector package for the conformance tests.  It cannot be installed beside Hakuna (its
# ultralytics-yolov5 dependency builds from a source archive that downloads at build time), so its pure-Python
# code and the few libraries its validator and writer import go into a folder of their own.
$(MEGADETECTOR): $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(MEGADETECTOR) megadetector==$(MEGADETECTOR_VERSION) jsonpickle \
	  humanfriendly send2trash clipboard dill fastquadtree || { rm -rf $(MEGADETECTOR); \
	  echo "could not install megadetector: its conformance tests will be skipped"; }

# YOLOv5's model code (what `hakuna[mdv5]` installs) for the MDv5 tests, without its training dependencies.
$(YOLOV5): $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(YOLOV5) yolov5==7.0.14 "setuptools<81" seaborn \
	  || { rm -rf $(YOLOV5); echo "could not install yolov5: the MDv5 tests will be skipped"; }

# The review page's test drives Debian's chromium with Playwright; install it where we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser test will be skipped"; \
	  else echo "chromium not found and not root: the browser test will be skipped"; fi; }

# `hakuna run-submission` runs main.py under Bubblewrap; install it where we can (root + apt), like chromium.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	      || echo "could not install bubblewrap: the sandbox tests will be skipped"; \
	  else echo "bwrap not found and not root: the sandbox tests will be skipped"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_dataset_reader.py

# The wheels a bare GPU machine lacks for `make gpu-check` (Ray slimmed, ultralytics, ...; torch is there already),
# for CPython 3.12 on x86-64: a git-ignored folder under 64 MiB, carried to that machine with the tree.
WHEELHOUSE := wheelhouse
GPU_SITE ?= /tmp/hakuna-site
wheelhouse: $(STAMP)
	$(BIN)/python benchmarks/wheelhouse.py --out $(WHEELHOUSE)

# On the GPU machine, offline, in under 8 minutes: the wheelhouse installed, then parity checks, the engine
# benchmark with its baselines and one Ray actor on the GPU (benchmarks/gpu_check.py says what it prints).
gpu-check:
	python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target $(GPU_SITE) $(WHEELHOUSE)/*.whl
	PYTHONPATH=$(GPU_SITE):$(CURDIR) PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled \
	  timeout 475 python3 benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(MEGADETECTOR) $(YOLOV5) .pytest_cache .ruff_cache
