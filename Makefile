# Two entry points on a fresh machine: `make run` and `make test`.
# Both create the project venv in .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
SPACE ?= quick
ARGS ?=

.PHONY: install install-test run test clean

install: $(VENV)/.installed  # what `make run` (and a cluster node) needs: the project and its [onnx] extra
install-test: $(VENV)/.installed-test  # and what the tests need besides: pytest, an MLflow server, moto's S3

# Reinstall when the dependencies change.
# pip byte-compiles at install (about 40 s more than --no-compile), because every Ray worker and
# CLI subprocess would otherwise compile torch and ray on import: `make test` from a fresh clone
# took 11 min 20 s with --no-compile and 5 min 25 s without it (CI=true bash .ci/run, 270 tests).
# constraints.txt holds the exact versions CI tested; pyproject.toml only ranges (a user's `pip install .`
# keeps their own torch).
$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or later is required; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[onnx]' -c constraints.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]' -c constraints.txt
	touch $@

run: install
	$(VENV)/bin/python -m search.run --space $(SPACE) $(ARGS)

test: install-test
	$(VENV)/bin/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
