# The two commands of the README: `make demo` and `make test`.
# Each sets up .venv (reused when already there) and runs its job.
# `make test` first runs `make lint` (ruff and mypy, configured in pyproject.toml): a violation fails it.
VENV ?= .venv
ARGS ?=

.PHONY: demo lint test bench setup clean

demo:
	@scripts/setup.sh all
	$(VENV)/bin/emospec demo $(ARGS)

lint:
	@scripts/setup.sh test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest $(ARGS)

bench:
	@scripts/setup.sh test
	$(VENV)/bin/python benchmarks/run.py $(ARGS)

setup:
	@scripts/setup.sh test

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
