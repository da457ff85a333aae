# The two commands of the README's quick start are `make demo` and `make test`.
# Everything they need (Debian packages, a virtualenv) is installed on first use.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo test setup system-deps lint typecheck bench clean deb

demo: setup
	$(PY) -m djamms_edge.demo

test: setup
	scripts/run-tests.sh

setup: system-deps $(STAMP)

system-deps:
	scripts/install-system-deps.sh $(if $(filter test bench,$(MAKECMDGOALS)),--with-postgres)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,systemd]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check djamms_edge tests bench
	$(VENV)/bin/mypy

# dist/djamms-edge_<version>_<arch>.deb (see packaging/README.md); needs PyPI unless build/deb/wheelhouse is warm.
deb: setup
	packaging/build-deb.sh

bench: setup
	for script in bench/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache var test-artifacts
