# The README's two commands: `make demo` (the main job: the whole pipeline) and `make test` (the tests).
# Each sets up everything it needs on a fresh Debian/Ubuntu machine with Python 3.11+.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: install data demo test lint clean

install: $(STAMP)

# torch is installed first and pinned so the local CPU build is used, never the multi-GB CUDA wheels.
# The base package is the torch-free runtime; `build` adds training/export/calibration, so all extras go in.
$(STAMP): pyproject.toml
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		echo "Installing python3-venv (Debian/Ubuntu ship venv without ensurepip)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[build,openvino,dev,serve]'
	touch $(STAMP)

data:
	@if [ ! -f "$(FASHION_MNIST_DIR)/t10k-images-idx3-ubyte.gz" ]; then \
		echo "Installing the Debian package dataset-fashion-mnist"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; \
	fi

# The main job: train ResNet-20 on Fashion-MNIST, export FP32 + INT8 for every installed target,
# compile, benchmark, and write runs/pipeline/summary.md.
demo: install data
	$(BIN)/edgeresnet pipeline --model resnet20 --data fashion-mnist --output runs/pipeline

test: install data
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check edgeresnet export calibration tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info runs
