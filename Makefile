# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: venv browser demo test lint bench sample demo-model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sam,onnx,viewer]'
	touch $(STAMP)

## Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; nothing is downloaded)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

## Replay the bundled sample recording through the whole pipeline; writes $(OUT)/demo.mp4
demo: venv
	mkdir -p $(OUT)
	$(VENV)/bin/kinect-occlusion replay recordings/sample.mkv --save-video $(OUT)/demo.mp4

## Run the test suite (and the linters)
test: venv browser
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

sample: venv
	$(PY) tools/make_sample_recording.py --out recordings/sample.mkv

demo-model: venv
	$(PY) tools/train_demo_model.py --out recordings/demo_model.pt

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache
