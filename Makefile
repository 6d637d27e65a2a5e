# Quick start:
#   make test    create .venv if needed, then run the test suite
#   make demo    serve the example project with the channel layer stack
# Run "make" or "make help" for every target.

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := redis,speedups,daphne,hypercorn,tasks,test,dev
PARALLEL ?= 2
ARGS ?=
# Only paths that exist: black and flake8 fail on missing ones.
LINT_PATHS := $(wildcard django_fork tests runtests.py benchmarks example tools)

.DEFAULT_GOAL := help

.PHONY: help venv .venv test demo demo-redis lint format coverage clean
.PHONY: patches patches-check branch upstream-test bisect-check prefix-check \
	branch-lint upstream-full branch-docs

help:
	@echo "Targets:"
	@echo "  venv      create $(VENV) and install django-fork[$(EXTRAS)] (editable)"
	@echo "  test      run the test suite: PARALLEL=$(PARALLEL), ARGS='labels or options'"
	@echo "  demo      serve example/ on 127.0.0.1:8000 with runstack, 4 workers"
	@echo "  demo-redis  the same over a private redis-server: uvicorn and"
	@echo "            two runworker processes"
	@echo "  lint      black --check, isort --check-only, flake8"
	@echo "  format    black and isort"
	@echo "  coverage  run the test suite under coverage and print a report"
	@echo "  clean     remove $(VENV), build artefacts and coverage data"
	@echo
	@echo "The upstream form (tools/make_patches.py; see docs in that file):"
	@echo "  patches        regenerate patches/, a git format-patch series"
	@echo "                 against the Django release we build on"
	@echo "  patches-check  fail if patches/ is stale"
	@echo "  branch         ./branch: that release + git am patches/,"
	@echo "                 installed in ./branch/.venv"
	@echo "  upstream-test  Django's runtests.py in ./branch: affected and new apps"
	@echo "  bisect-check   upstream-test's apps after every patch of the series"
	@echo "                 (FROM=N TO=N: only patches N to N, the rest applied)"
	@echo "  prefix-check   after every patch: import its modules, run only the"
	@echo "                 test apps it adds (minutes, not bisect-check's hour)"
	@echo "  branch-lint    black, isort, flake8 on the files the series changes"
	@echo "  upstream-full  Django's whole suite, branch vs stock (slow;"
	@echo "                 STOCK_LOG=FILE: an earlier stock run's log)"
	@echo "  branch-docs    Django's docs build and spelling check in ./branch,"
	@echo "                 failing on warnings that stock docs lack"
	@echo "  DJANGO=6.1.3   any of these on Django 6.1.3 (./branch-6.1.3)"
	@echo
	@echo "Benchmarks and failure drills (benchmarks/, not part of make test):"
	@echo "  bench     HTTP setups side by side"
	@echo "            (BENCH_ARGS='--rounds 5 --duration 5' lengthens it),"
	@echo "            the WebSocket setups (WS_BENCH_ARGS='--quick' shortens"
	@echo "            them), a 1 GiB upload through the channel path, then"
	@echo "            tasks: Celery vs ChannelTaskBackend"
	@echo "            (TASK_BENCH_ARGS='--rounds 5 --tasks 20000');"
	@echo "            reports in benchmarks/results/"
	@echo "  chaos     failure drills under load (CHAOS_ARGS='--drills 1,2'),"
	@echo "            then impolite clients on runstack and uvicorn + runworker"
	@echo "            (IMPOLITE_ARGS='--stacks runstack --scale 0.1')"
	@echo "  chaos-redis  Sentinel failover and shard-kill drills of the Redis"
	@echo "            layer (CHAOS_REDIS_ARGS='--drills 1')"
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
	cd example && ../$(VENV_PYTHON) manage.py migrate --noinput --verbosity 0 && \
		../$(VENV_PYTHON) manage.py runstack --bind 127.0.0.1:8000 --workers 4

# A private redis-server on a free port (never 6379), from Debian's package
# when missing.
demo-redis: $(STAMP)
	@command -v redis-server >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y redis-server; }
	cd example && ../$(VENV_PYTHON) serve_redis.py --port 8000 --workers 2

lint: $(STAMP)
	$(VENV)/bin/black --check $(LINT_PATHS)
	$(VENV)/bin/isort --check-only $(LINT_PATHS)
	$(VENV)/bin/flake8 $(LINT_PATHS)

format: $(STAMP)
	$(VENV)/bin/black $(LINT_PATHS)
	$(VENV)/bin/isort $(LINT_PATHS)

coverage: $(STAMP)
	$(VENV_PYTHON) runtests.py --coverage $(ARGS)

# The upstream form. The tool needs only the standard library; it makes its
# own virtualenvs (pinned formatters in ~/.cache/django_fork, ./branch/.venv).
# DJANGO=6.1.3 selects the other base (./branch-6.1.3, Python 3.12).
DJANGO ?=
MAKE_PATCHES := $(PYTHON) tools/make_patches.py $(if $(DJANGO),--django $(DJANGO))

patches:
	$(MAKE_PATCHES) generate

patches-check:
	$(MAKE_PATCHES) check

branch:
	$(MAKE_PATCHES) branch

upstream-test:
	PARALLEL=$(PARALLEL) $(MAKE_PATCHES) upstream-test

bisect-check:
	PARALLEL=$(PARALLEL) $(MAKE_PATCHES) bisect-check \
		$(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

prefix-check:
	$(PYTHON) tools/prefix_check.py $(if $(DJANGO),--django $(DJANGO))

branch-lint:
	$(MAKE_PATCHES) branch-lint

upstream-full:
	PARALLEL=$(PARALLEL) $(MAKE_PATCHES) upstream-full \
		$(if $(STOCK_LOG),--stock-log $(STOCK_LOG))

branch-docs:
	PARALLEL=$(PARALLEL) $(MAKE_PATCHES) branch-docs

clean:
	rm -rf $(VENV) build dist *.egg-info htmlcov .coverage .coverage.*
	find . -path ./.git -prune -o -name __pycache__ -type d -prune \
		-exec rm -rf {} +

# Benchmarks and failure drills. Each starts its own servers (and private
# redis-servers) on free loopback ports. wrk and redis-server come from
# Debian's packages when missing; the WSGI server and the peer (Channels 4.3)
# from benchmarks/requirements.txt.
BENCH_ARGS ?=
WS_BENCH_ARGS ?=
TASK_BENCH_ARGS ?=
CHAOS_ARGS ?=
CHAOS_REDIS_ARGS ?=
IMPOLITE_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: bench chaos chaos-redis bench-tools

$(BENCH_STAMP): benchmarks/requirements.txt $(STAMP)
	$(VENV_PYTHON) -m pip install -r benchmarks/requirements.txt
	@touch $(BENCH_STAMP)

bench-tools:
	@for tool in wrk:wrk redis-server:redis-server valgrind:valgrind; do \
		command -v $${tool%%:*} >/dev/null && continue; \
		echo "Installing $${tool#*:} from the Debian packages."; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y $${tool#*:} || exit 1; \
	done

bench: $(BENCH_STAMP) bench-tools
	$(VENV_PYTHON) benchmarks/http_stack.py $(BENCH_ARGS)
	$(VENV_PYTHON) benchmarks/websocket_stack.py $(WS_BENCH_ARGS)
	$(VENV_PYTHON) benchmarks/big_upload.py
	$(VENV_PYTHON) benchmarks/tasks.py $(TASK_BENCH_ARGS)

chaos: $(BENCH_STAMP) bench-tools
	$(VENV_PYTHON) benchmarks/chaos.py $(CHAOS_ARGS)
	$(VENV_PYTHON) benchmarks/impolite.py $(IMPOLITE_ARGS)

chaos-redis: $(BENCH_STAMP) bench-tools
	$(VENV_PYTHON) benchmarks/chaos_redis.py $(CHAOS_REDIS_ARGS)
