# Shortcuts for developers. The README's quick start calls scripts/demo.sh and scripts/test.sh
# directly, because a fresh Debian machine has no make.

.PHONY: demo test setup lint deb bench clean

demo:
	scripts/demo.sh

test:
	scripts/test.sh

setup:
	scripts/setup.sh

lint: setup
	.venv/bin/ruff check djamms_edge tests bench
	.venv/bin/mypy

# dist/djamms-edge_<version>_<arch>.deb (see packaging/README.md); needs PyPI unless build/deb/wheelhouse is warm.
deb: setup
	packaging/build-deb.sh

bench:
	scripts/setup.sh --with-postgres
	for script in bench/*.py; do .venv/bin/python $$script || exit 1; done

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache var test-artifacts
