"""Fixtures shared by every test package."""

# The PostgreSQL server and per-test databases (DJAMMS_TEST_PG_URL); see tests/pg_cluster.py.
pytest_plugins = ["tests.pg_cluster"]
