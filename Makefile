# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out
# The Azure Kinect SDK as a reference: its own venv (pyk4a-bundle needs numpy<2), + Xvfb/Mesa
K4A_VENV ?= .venv-k4a
K4A_STAMP := $(K4A_VENV)/.installed

.PHONY: venv sdk-env browser demo test lint bench bench-depth sample demo-model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sam,onnx,viewer]'
	touch $(STAMP)

## The SDK reference environment: $(K4A_VENV) (pyk4a-bundle, numpy<2) and the apt packages for xvfb-run
sdk-env: $(K4A_STAMP)

$(K4A_STAMP): tools/k4a/requirements.txt tools/k4a/apt_packages.sh
	tools/k4a/apt_packages.sh
	$(PYTHON) -m venv $(K4A_VENV)
	$(K4A_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(K4A_VENV)/bin/python -m pip install --quiet -r tools/k4a/requirements.txt
	$(K4A_VENV)/bin/python -c "import pyk4a, numpy; print('sdk-env: pyk4a', pyk4a.__file__, 'numpy', numpy.__version__)"
	touch $(K4A_STAMP)

## Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; nothing is downloaded)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

## Replay the bundled sample recording through the whole pipeline; writes $(OUT)/demo.mp4
demo: venv
	mkdir -p $(OUT)
	$(VENV)/bin/kinect-occlusion replay recordings/sample.mkv --save-video $(OUT)/demo.mp4

## Run the test suite (and the linters)
test: venv sdk-env browser
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check kinect_occlusion tools tests
	$(VENV)/bin/ruff format --check kinect_occlusion tools tests
	$(VENV)/bin/mypy kinect_occlusion

lint: venv
	$(VENV)/bin/ruff check kinect_occlusion tools tests
	$(VENV)/bin/ruff format --check kinect_occlusion tools tests
	$(VENV)/bin/mypy kinect_occlusion

bench: venv
	$(PY) tools/bench.py --out docs/BENCHMARKS.md

## depth→colour: ours vs the SDK (Mesa) vs open-azure-kinect; prints a markdown table
bench-depth: venv sdk-env
	$(PY) tools/bench_depth.py

sample: venv
	$(PY) tools/make_sample_recording.py --out recordings/sample.mkv

demo-model: venv
	$(PY) tools/train_demo_model.py --out recordings/demo_model.pt

clean:
	rm -rf $(OUT) $(K4A_VENV) .pytest_cache .mypy_cache .ruff_cache
