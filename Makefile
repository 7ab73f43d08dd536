# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out
# The Azure Kinect SDK as a reference: its own venv (pyk4a-bundle needs numpy<2), + Xvfb/Mesa
K4A_VENV ?= .venv-k4a
K4A_STAMP := $(K4A_VENV)/.installed

.PHONY: venv sdk-env browser triton-venv demo test lint bench bench-depth bench-triton sample demo-model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sam,onnx,viewer,triton,depth]'
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

## A real tritonserver for the tests and tools/bench_triton.py: the nvidia-pytriton wheel (tritonserver 2.51,
## python backend, CPU only) pins numpy<2, so it gets its own venv. The python-backend stub for this
## Python goes next to the backend; it embeds the system libpython3.11 and finds this venv's numpy and
## onnxruntime through PATH (tests/integration/triton_server.py starts it so).
TRITON_VENV ?= .venv-triton
TRITON_PYTHON ?= python3.11
TRITON_STAMP := $(TRITON_VENV)/.installed
TRITON_DIR = $(TRITON_VENV)/lib/python3.11/site-packages/pytriton/tritonserver

triton-venv: $(TRITON_STAMP)

$(TRITON_STAMP):
	$(TRITON_PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet 'nvidia-pytriton==0.7.0' 'numpy<2' 'onnxruntime>=1.17'
	cp $(TRITON_DIR)/python_backend_stubs/3.11/triton_python_backend_stub $(TRITON_DIR)/backends/python/
	touch $(TRITON_STAMP)

## Replay the bundled sample recording through the whole pipeline; writes $(OUT)/demo.mp4
demo: venv
	mkdir -p $(OUT)
	$(VENV)/bin/kinect-occlusion replay recordings/sample.mkv --save-video $(OUT)/demo.mp4

## Run the test suite (and the linters)
test: venv sdk-env browser triton-venv
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

bench-triton: venv triton-venv
	$(PY) tools/bench_triton.py

sample: venv
	$(PY) tools/make_sample_recording.py --out recordings/sample.mkv

demo-model: venv
	$(PY) tools/train_demo_model.py --out recordings/demo_model.pt

clean:
	rm -rf $(OUT) $(K4A_VENV) .pytest_cache .mypy_cache .ruff_cache
