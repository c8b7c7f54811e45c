# Two commands on a fresh machine: `make test` and `make demo`. Everything lands in .venv,
# build/ and install/ at the repository root; a second run reuses them.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
PYTEST_ARGS ?=

.PHONY: all venv build test lint demo bench clean

all: build

venv:
	bash scripts/bootstrap.sh

build: venv
	$(ENV) colcon build --symlink-install --event-handlers console_direct- \
	  --cmake-args -DPython3_EXECUTABLE="$$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
	    -DPython3_NumPy_INCLUDE_DIR="$$(cat .venv/.numpy_include)"

lint: venv
	$(ENV) ruff check .

test: build
	$(ENV) ruff check . && python -m pytest $(PYTEST_ARGS)

demo: build
	$(ENV) python -m visio_memoria_ros.nodes.demo $(DEMO_ARGS)

bench: build
	$(ENV) python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf build install log
