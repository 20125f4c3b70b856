"""Test-suite set-up lives in the repository's root conftest.py (shared with the doctests)."""
