# `make demo` runs the pipeline end to end on a generated sample; `make test` runs the tests.
# Both install everything from the committed lockfile (uv.lock) into .venv first; `make test` also
# installs the system packages the tests need (Debian's chromium, with sudo when not root).
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: demo test install system-deps clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --group dev --python $(PYTHON)
	touch $@

install: .venv/.installed

system-deps:
	scripts/install-system-deps

demo: install
	.venv/bin/churn demo

test: install system-deps
	.venv/bin/python -m pytest -q

clean:
	rm -rf .venv .tools churn-data
