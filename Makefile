# The two commands: `make run` and `make test`. Both set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-embedded test-services chaos bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: install
	$(PY) manage.py up

# The whole suite twice: on the embedded default (SQLite + filesystem broker) and on the services
# this machine runs (PostgreSQL + Redis; RabbitMQ for the broker tests). Framework-free core tests
# do not touch a backend, so they run once.
test: test-embedded test-services

test-embedded: install
	VIEWER_TEST_BACKEND=embedded $(PY) -m pytest

test-services: install
	VIEWER_TEST_BACKEND=services $(PY) -m pytest --ignore=tests/core

# Slow fault tests (SIGKILLed workers, two workers sharing a job, poison chunks, cancel mid-run),
# on both backends. .ci/run calls this after `make test`.
chaos: install
	VIEWER_TEST_BACKEND=embedded $(PY) -m pytest -m chaos tests/test_faults.py
	VIEWER_TEST_BACKEND=services $(PY) -m pytest -m chaos tests/test_faults.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
