# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create ./.venv on first use (CPU PyTorch 2.13 from this machine's wheel cache or PyPI).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.oscar-edge-installed

.PHONY: demo test clean-venv jetson-check

SERVE_VENV ?= $(VENV)-serve
SERVE_STAMP := $(SERVE_VENV)/.oscar-edge-installed

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,test,export,openvino,track-bench,triton-client]'
	touch $(STAMP)

# The Triton server's own environment (numpy < 2; README, "Many cameras"), used by the loopback
# tests through OSCAR_EDGE_SERVE_PYTHON.
$(SERVE_STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install -q -e '.[serve]'
	touch $(SERVE_STAMP)

demo: $(STAMP)
	$(VENV)/bin/oscar-edge run --source 'synthetic://?live=1' --headless --save demo.mp4

test: $(STAMP) $(SERVE_STAMP)
	OSCAR_EDGE_SERVE_PYTHON=$(SERVE_VENV)/bin/python $(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)

# On a Jetson (benchmarks/jetson/README.md, "One command: make jetson-check"): the Python of the
# activated --system-site-packages venv that sees JetPack's TensorRT, never the .venv above (CPU
# torch); nothing is installed here. Options through ARGS, e.g. make jetson-check ARGS=--quick
jetson-check:
	@if [ -z "$$VIRTUAL_ENV" ]; then echo "make jetson-check: activate the venv of benchmarks/jetson/README.md first (. ~/oscar/venv/bin/activate) or give VIRTUAL_ENV=<venv folder>" >&2; exit 2; fi
	"$$VIRTUAL_ENV/bin/python" benchmarks/jetson/jetson_check.py $(ARGS)
