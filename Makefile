# `make demo` runs the pipeline end to end on a generated sample; `make test` runs the tests.
# Both install everything from the committed lockfile (uv.lock) into .venv first.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: demo test install bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --group dev --python $(PYTHON)
	touch $@

install: .venv/.installed

demo: install
	.venv/bin/churn demo

test: install
	.venv/bin/python -m pytest -q

clean:
	rm -rf .venv .tools churn-data
