# `make test` and `make demo` work on a fresh machine: they create .venv when it is
# missing (or when the requirements changed) and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Keep Keras' and matplotlib's caches inside the checkout, not in the home folder.
export KERAS_HOME := $(CURDIR)/.cache/keras
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv demo test lint browser test-tensorflow test-jax clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip byte-compiles on one core; compileall does the same on all of them (91 -> 70 s for the install here).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt \
		-r requirements-test.txt
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# The main job on the embedded synthetic data: synth -> prepare -> train -> evaluate, under demo/.
demo: $(STAMP)
	$(BIN)/frcunet demo

# The linter, the whole suite and the package's docstring examples on TensorFlow, then the
# backend-agnostic tests again on JAX.
test: lint browser test-tensorflow test-jax

# The report tests render the pages in headless Chromium (Debian's package). Installed here when it is missing
# and this is root with apt-get; elsewhere those tests skip, and under CI=true they fail, as without the shared data.
CHROMIUM_NAMES := chromium chromium-browser google-chrome
browser:
	@for name in $(CHROMIUM_NAMES); do command -v $$name > /dev/null && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		echo "installing chromium for the report tests (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null) \
			|| echo "warning: apt-get could not install chromium; the browser tests will skip (fail under CI=true)"; \
	else \
		echo "warning: chromium is missing (install it: apt-get install chromium); the browser tests will skip" \
			"(fail under CI=true)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

# Tests run in TEST_WORKERS processes (pytest-xdist): most of a test's time is single-threaded graph tracing
# and interpreter start-up, which overlap well, so 3 beat 2 even on 2 cores (from a fresh clone here, the
# TensorFlow pass took 363 s with 3 and 409 s with 2). Work stealing evens out the long tests; the slowest
# ones are listed at the end, to keep an eye on the suite's time.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=12

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) --doctest-modules tests frcunet

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m agnostic

clean:
	rm -rf $(VENV) .cache .pytest_cache
