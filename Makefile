# Two entry points on a fresh machine: `make run` and `make test`.
# Both create the project venv in .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
SPACE ?= quick
ARGS ?=

.PHONY: install run test clean

install: $(VENV)/.installed

# Reinstall when the dependencies change.
# --no-compile: byte-compiling every module of torch and ray took half the install
# (84 s vs 43 s measured); Python compiles the few it imports on first use (+8 s).
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
	touch $@

run: install
	$(VENV)/bin/python -m search.run --space $(SPACE) $(ARGS)

test: install
	$(VENV)/bin/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
