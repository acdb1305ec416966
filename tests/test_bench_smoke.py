"""The benchmarks still run (tiny sizes, no timing targets): they must not rot. One test
per benchmark, so that the test runners share them out."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_backend  # the benchmarks make their own stores

BENCH = Path(__file__).parent.parent / "bench"
sys.path.insert(0, str(BENCH))
from run_all import SMOKE  # noqa: E402  (names and sizes only: it imports no benchmark)

sys.path.remove(str(BENCH))


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_each_benchmark_runs_at_a_tiny_size(name):
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_API_DB", "PYTHONPATH")}
    done = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--smoke", name], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"## {SMOKE[name][0]}" in done.stdout, done.stdout[-2000:]
    assert "Traceback" not in done.stderr
