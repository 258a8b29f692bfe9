"""Bundled example pipelines (used by the README, the golden SQL and the tests)."""
