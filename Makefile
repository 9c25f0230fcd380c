# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create ./.venv on first use (CPU PyTorch 2.13 from this machine's wheel cache or PyPI).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.oscar-edge-installed

.PHONY: demo test clean-venv jetson-check

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,test,export,openvino,track-bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/oscar-edge run --source 'synthetic://?live=1' --headless --save demo.mp4

test: $(STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)

# On a Jetson (benchmarks/jetson/README.md, "One command: make jetson-check"): the Python of the
# activated --system-site-packages venv that sees JetPack's TensorRT, never the .venv above (CPU
# torch); nothing is installed here. Options through ARGS, e.g. make jetson-check ARGS=--quick
jetson-check:
	@if [ -z "$$VIRTUAL_ENV" ]; then echo "make jetson-check: activate the venv of benchmarks/jetson/README.md first (. ~/oscar/venv/bin/activate) or give VIRTUAL_ENV=<venv folder>" >&2; exit 2; fi
	"$$VIRTUAL_ENV/bin/python" benchmarks/jetson/jetson_check.py $(ARGS)
