# Quick start:
#   make test    create .venv if needed, then run the test suite
#   make demo    serve the example project with the channel layer stack
# Run "make" or "make help" for every target.

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := redis,daphne,hypercorn,test,dev
PARALLEL ?= 2
ARGS ?=
# Only paths that exist: black and flake8 fail on missing ones.
LINT_PATHS := $(wildcard django_fork tests runtests.py benchmarks example)

.DEFAULT_GOAL := help

.PHONY: help venv .venv test demo lint format coverage clean

help:
	@echo "Targets:"
	@echo "  venv      create $(VENV) and install django-fork[$(EXTRAS)] (editable)"
	@echo "  test      run the test suite: PARALLEL=$(PARALLEL), ARGS='labels or options'"
	@echo "  demo      serve example/ on 127.0.0.1:8000 with runstack, 4 workers"
	@echo "  lint      black --check, isort --check-only, flake8"
	@echo "  format    black and isort"
	@echo "  coverage  run the test suite under coverage and print a report"
	@echo "  clean     remove $(VENV), build artefacts and coverage data"
	@echo
	@echo "Example: make test ARGS='layers_tests -v 2'"

venv .venv: $(STAMP)

# A real file target: nothing happens unless pyproject.toml changed since the
# last successful install. The stamp is only written when pip succeeded.
$(STAMP): pyproject.toml
	@test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -e ".[$(EXTRAS)]"
	@touch $(STAMP)

test: $(STAMP)
	$(VENV_PYTHON) runtests.py --parallel $(PARALLEL) $(ARGS)

demo: $(STAMP)
	cd example && ../$(VENV_PYTHON) manage.py runstack --bind 127.0.0.1:8000 --workers 4

lint: $(STAMP)
	$(VENV)/bin/black --check $(LINT_PATHS)
	$(VENV)/bin/isort --check-only $(LINT_PATHS)
	$(VENV)/bin/flake8 $(LINT_PATHS)

format: $(STAMP)
	$(VENV)/bin/black $(LINT_PATHS)
	$(VENV)/bin/isort $(LINT_PATHS)

coverage: $(STAMP)
	$(VENV_PYTHON) runtests.py --coverage $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info htmlcov .coverage .coverage.*
	find . -path ./.git -prune -o -name __pycache__ -type d -prune \
		-exec rm -rf {} +
