# `make demo` runs the pipeline end to end on a generated sample; `make test` runs the tests.
# Both install everything from the committed lockfile (uv.lock) into .venv first; `make test` also
# installs the `spark` extra (pyspark, sqlglot: the Spark feature-build tests) and the system packages the
# tests need (Debian's chromium and, without a Java 17+, openjdk-17-jre-headless; with sudo when not root).
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: demo test install install-spark system-deps clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --group dev --python $(PYTHON)
	rm -f .venv/.installed-spark  # the exact sync above removed the spark extra, if it was there
	touch $@

# the same plus the optional `spark` extra (a superset, so it also counts as the plain install)
.venv/.installed-spark: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --group dev --extra spark --python $(PYTHON)
	touch $@ .venv/.installed

install: .venv/.installed

install-spark: .venv/.installed-spark

system-deps:
	scripts/install-system-deps

demo: install
	.venv/bin/churn demo

test: install-spark system-deps
	.venv/bin/python -m pytest -q --durations=25

clean:
	rm -rf .venv .tools churn-data
