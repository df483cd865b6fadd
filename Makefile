# The two commands: `make run` and `make test`. Both set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.runtime-installed

.PHONY: install install-runtime chromium run test test-embedded test-services chaos screenshots bench clean

# `make test` needs the test tools and Debian's Chromium; `make run` only the runtime pins.
install: $(STAMP) chromium
install-runtime: $(RUNTIME_STAMP)

# The stamps depend on this Makefile too, so a changed install recipe re-runs (pip is quick when
# nothing changed); a fresh clone has no .venv and always runs them.
define make_venv
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip "setuptools>=70.1"
endef

# The package itself, editable and without dependencies (the pins above are the dependencies):
# `import viewer` then works from any folder (notebooks, scripts) and the venv has the `viewer`
# command. It builds with the venv's setuptools (make_venv), not an isolated download per install.
define install_package
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
endef

$(RUNTIME_STAMP): requirements.txt pyproject.toml Makefile
	$(make_venv)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(install_package)
	touch $(RUNTIME_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml Makefile
	$(make_venv)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(install_package)
	touch $(STAMP) $(RUNTIME_STAMP)

# Browser tests drive Debian's Chromium through Playwright (executable_path=/usr/bin/chromium;
# never `playwright install`, which downloads a browser). Checked on every install, so a machine
# without it gets it; `apt-get update` only if the install fails on stale package lists.
CHROMIUM_PKGS := chromium chromium-driver
APT_INSTALL   := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium:
	@test -x /usr/bin/chromium || $(SUDO) $(APT_INSTALL) $(CHROMIUM_PKGS) \
		|| { $(SUDO) apt-get update && $(SUDO) $(APT_INSTALL) $(CHROMIUM_PKGS); }

# On a fresh database `--demo` also loads the demo models, datasets and scoring jobs
# (`python manage.py demo` loads them any time; it adds nothing twice).
run: install-runtime
	$(PY) manage.py up --demo

# The whole suite twice: on the embedded default (SQLite + filesystem broker) and on the services
# this machine runs (PostgreSQL + Redis; RabbitMQ for the broker tests). What does not depend on the
# backend runs once, with the embedded suite: the framework-free core and plots, the model hosts,
# the import layers, the parsers of request bodies, CSV dialects and hostile input, `manage.py up`
# (always the embedded default), the install files and the wheel, the notebooks (the client's flows, which
# the API tests cover on both), compiled runtimes' parity and serving (their job lifecycle runs
# on both), explanations, segments and partial dependence (computed in model hosts and from job
# parts; the job lifecycle they ride on runs on both), and the browser tests (pages, scripts, CSP, XSS).
test: test-embedded test-services

test-embedded: install
	VIEWER_TEST_BACKEND=embedded $(PY) -m pytest

test-services: install
	VIEWER_TEST_BACKEND=services $(PY) -m pytest --ignore=tests/core --ignore=tests/browser --ignore=tests/plots \
		--ignore=tests/infra --ignore=tests/test_layers.py --ignore=tests/test_predict_shapes.py \
		--ignore=tests/test_data_dialects.py --ignore=tests/test_hostile_input.py --ignore=tests/test_up.py \
		--ignore=tests/test_packaging.py --ignore=tests/test_notebooks.py --ignore=tests/test_explain.py \
		--ignore=tests/test_segments.py --ignore=tests/test_dependence.py

# Slow fault and load tests on both backends: SIGKILL / SIGTERM a worker mid-job, two workers on
# one job, poison chunks, cancel across a worker restart, late duplicate messages, Redis restarted
# and PostgreSQL stopped mid-job (services), the web process killed mid-upload, 60 s of load at 32
# connections while uploads and jobs run, the monitoring loop under gunicorn and a worker (drift
# injected halfway, labels, a web worker SIGTERMed and SIGKILLed mid-traffic, a failing store); the hostile-model corpus's proofs that each case crashes
# or freezes a process without our loader, and the model-host fuzzer (5 minutes, its seed printed;
# FUZZ_SECONDS, FUZZ_SEED and FUZZ_CASE replay) (once: no backend). .ci/run calls this after `make test`.
chaos: install
	VIEWER_TEST_BACKEND=embedded $(PY) -m pytest -m chaos tests/test_faults.py tests/test_load.py tests/test_monitoring_live.py tests/core/test_hostile_native.py tests/core/test_hostile_load.py tests/core/test_hostile_params.py tests/infra/test_host_fuzz.py
	VIEWER_TEST_BACKEND=services $(PY) -m pytest -m chaos tests/test_faults.py tests/test_load.py tests/test_monitoring_live.py

# The README's pictures: the browser tests take screenshots, tests/browser/readme.py keeps small copies.
screenshots: install
	VIEWER_TEST_BACKEND=embedded $(PY) -m pytest -q tests/browser
	$(PY) tests/browser/readme.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
