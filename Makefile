# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_DIR := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.paretonas-installed

.PHONY: setup data postgres chromium demo quickstart test test-fast lint bench clean

setup: $(STAMP)

# torch and torchvision first, at the versions this project is tested with (served from this
# machine's disk where pip is capped there; a CUDA build that also runs on the CPU).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[ray,dev]'
	touch $@

# Fashion-MNIST: Debian's package when running as root; otherwise the demo config lets
# torchvision download it (dataset.download: true) for online users.
data:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST: $(FASHION_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null \
		&& echo "Fashion-MNIST: installed Debian package dataset-fashion-mnist"; \
	else \
		echo "Fashion-MNIST: not in $(FASHION_DIR); the demo downloads it with torchvision"; \
	fi

# PostgreSQL's binaries for the tests marked postgres (tests/postgres.py starts a throwaway
# server on loopback; nothing is started here): Debian's package when running as root.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL: $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		(apt-get install -y -q postgresql >/dev/null 2>&1 \
			|| (apt-get update -q && apt-get install -y -q postgresql) >/dev/null) \
		&& echo "PostgreSQL: installed Debian package postgresql"; \
	else \
		echo "PostgreSQL: no initdb under /usr/lib/postgresql/*/bin; tests marked postgres will fail (apt-get install postgresql)"; \
	fi

# Chromium for the browser test of the report (tests/search/test_report_browser.py, driven by
# the playwright package's own driver, never a downloaded browser): Debian's package as root.
chromium:
	@if [ -x /usr/bin/chromium ]; then \
		echo "Chromium: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		(apt-get install -y -q chromium >/dev/null 2>&1 \
			|| (apt-get update -q && apt-get install -y -q chromium) >/dev/null) \
		&& echo "Chromium: installed Debian package chromium"; \
	else \
		echo "Chromium: not at /usr/bin/chromium; the report's browser test will fail (apt-get install chromium)"; \
	fi

demo: setup data
	$(VENV)/bin/paretonas search --config configs/fashion-mnist-cpu.yaml --name demo

quickstart: setup
	$(VENV)/bin/paretonas search --config configs/quickstart.yaml --name quickstart

test: setup data postgres chromium
	$(PY) -m pytest -q tests

test-fast: setup postgres chromium
	$(PY) -m pytest -q -m "not slow" tests

# Performance goals: each benchmark writes JSON (machine, command, figures) under results/benchmarks/.
bench: setup data
	$(PY) benchmarks/compression.py
	$(PY) benchmarks/latency_predictor.py
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/timing_lock.py
	$(PY) benchmarks/search_quality.py --live-quantile 0.5 --quantile-seeds 6 --equal-compute-trials 64 --compression-space --kd-patience-epochs 200 --kd-patience-seeds 7
	$(PY) benchmarks/early_stopping.py
	$(PY) benchmarks/budget_tiers.py
	$(PY) benchmarks/precision_pairs.py
	$(PY) benchmarks/methods.py
	$(PY) benchmarks/distillation.py
	$(PY) benchmarks/kd_small_student.py

lint: setup
	$(VENV)/bin/ruff check spaces evaluators search tests benchmarks

clean:
	rm -rf $(VENV) results/*/ .pytest_cache
