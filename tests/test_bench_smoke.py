"""The benchmarks still run (tiny sizes, no timing targets): they must not rot."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_backend  # the benchmarks make their own stores

BENCH = Path(__file__).parent.parent / "bench"


def test_benchmarks_run_at_tiny_sizes():
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_API_DB", "PYTHONPATH")}
    done = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--smoke"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for section in ("Cold CLI", "In-process request path", "A check with a model", "Flat in the number of keys",
                    "Reports at scale", "usage import", "Concurrency", "PostgreSQL", "Status line"):
        assert f"## {section}" in done.stdout, section
    assert "errors" in done.stdout and "Traceback" not in done.stderr
