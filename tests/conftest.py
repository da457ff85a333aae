"""Fixtures shared by every test package."""

import os

# numpy is a test dependency only (the full-decode reference readings). sqlite_utils imports it wherever it is
# installed, and its OpenBLAS would start a thread pool in every hub and edge process the tests start.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The PostgreSQL server and per-test databases (DJAMMS_TEST_PG_URL); see tests/pg_cluster.py.
pytest_plugins = ["tests.pg_cluster"]
