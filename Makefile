# Yilianti — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: install demo test test-fast lint typecheck browser-deps clean bench ohif

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Python venv missing: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.lock
	@touch $(TEST_STAMP)

demo: install
	$(BIN)/yilianti demo

# Optional: the OHIF viewer (npm @ohif/app, MIT) fetched with the machine's npm into var/ohif (YILIANTI_OHIF_DIR),
# served at /ohif/ against our /dicomweb; the order page then offers it beside the light viewer.
ohif: install
	$(BIN)/python -m yilianti.diagnostics.dicomweb.ohif

# Browser tests need Debian's chromium; install it when we are root (as in CI), otherwise
# the browser tests skip themselves with a visible notice.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get install -y -qq chromium fonts-noto-cjk >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null 2>&1)) || \
	  echo "NOTICE: could not install chromium; browser tests will be skipped"; \
	else echo "NOTICE: /usr/bin/chromium missing and not root; browser tests will be skipped"; fi

# Whole suite on SQLite; and on PostgreSQL too when YILIANTI_TEST_DATABASE_URL is set.
# pytest-xdist: one worker per core (TEST_WORKERS=0 runs in this process), each with a test database and
# var dir of its own (tests/conftest.py); --dist loadscope keeps a module's tests on one worker, so a
# module-scoped fixture (a demo load, a live server) is built once.
TEST_WORKERS ?= auto
PYTEST_PARALLEL := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope
test: $(TEST_STAMP) browser-deps
	$(PYTEST_PARALLEL)
	@if [ -n "$$YILIANTI_TEST_DATABASE_URL" ]; then \
	  echo "=== second pass on PostgreSQL ($$YILIANTI_TEST_DATABASE_URL) ==="; \
	  YILIANTI_TEST_BACKEND=postgresql $(PYTEST_PARALLEL) -m "not browser"; \
	else echo "NOTICE: YILIANTI_TEST_DATABASE_URL unset; PostgreSQL pass skipped"; fi

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
