"""In CI (CI=true) a test that needs something missing (PostgreSQL, pgbouncer) fails;
elsewhere it skips, saying why."""
import os

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str):
    """Skip the test for `reason`, or fail it in CI."""
    import pytest

    if IN_CI:
        pytest.fail(f"in CI this is not skipped: {reason}")
    pytest.skip(reason)
