# The two commands of the README: `make demo` and `make test`.
# Each sets up .venv (reused when already there) and runs its job.
VENV ?= .venv
ARGS ?=

.PHONY: demo test bench setup clean

demo:
	@scripts/setup.sh all
	$(VENV)/bin/emospec demo $(ARGS)

test:
	@scripts/setup.sh test
	$(VENV)/bin/python -m pytest $(ARGS)

bench:
	@scripts/setup.sh test
	$(VENV)/bin/python benchmarks/run.py $(ARGS)

setup:
	@scripts/setup.sh test

clean:
	rm -rf $(VENV) runs .pytest_cache
