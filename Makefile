# `make run` and `make test` set themselves up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean setup deps constraints

# constraints.txt pins every package (direct and transitive) to the versions the suite was run
# with; refresh it on purpose: `$(BIN)/pip install -U -e '.[dev]' && make constraints`.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q 'pip==26.3'
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/transit server -dev $(ARGS)

# System packages the integration tests run for real (redis-server, haproxy): installed with
# apt-get (through sudo unless root) only when missing. haproxy lives in /usr/sbin, which a
# non-root PATH may lack, hence the extra test -x.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

test: deps $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable > constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
