# One entry point for people and CI. `make setup` is idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the CPU wheel the machine has; a bare "torch" would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

test: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q || [ $$? -eq 5 ]  # 5: no tests collected

lint: setup
	$(PY) -m ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
