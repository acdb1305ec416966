"""Every performance target, in one run: python bench/run_all.py [--smoke [NAME ...]]

--smoke runs each benchmark at a tiny size, with no targets asserted, so CI notices
when a benchmark stops working (tests/test_bench_smoke.py). ccusage's comparison
(bench/vs_ccusage.py, and bench/statusline.py --ccusage) needs npm and is run by hand.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Each benchmark (its module), the title of its section, and a tiny size for --smoke.
SMOKE = {
    "cold_cli": ("Cold CLI", {"runs": 2, "keys": 2}),
    "request_path": ("In-process request path", {"seconds": 0.2}),
    "model_check": ("A check with a model", {"seconds": 0.2, "busy": 300}),
    "keys_scale": ("Flat in the number of keys", {"many": 300, "runs": 2, "seconds": 0.4}),
    "reports_scale": ("Reports at scale", {"sizes": (300, 3000), "runs": 1}),
    "labels_report": ("Reports by owner and metadata", {"size": 3000, "runs": 1}),
    "import_speed": ("usage import", {"records": 3000, "log_mb": (1,)}),
    "concurrency": ("Concurrency", {"processes": 2, "seconds": 0.5, "rounds": 1}),
    "postgres": ("PostgreSQL", {"seconds": 0.4, "processes": 2, "rounds": 1}),
    "asgi": ("The ASGI gate through uvicorn", {"seconds": 0.3, "rounds": 1, "postgres": False}),
    "statusline": ("Status line", {"runs": 2, "responses": 10}),
    "budget_periods": ("Budget periods in a time zone", {"n": 20}),
}


def main(smoke: list[str] | None) -> None:
    """smoke: None for the full run; else the benchmarks to run at a tiny size (all when empty)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import inputs_folder, scratch

    if smoke is not None:
        inputs_folder(scratch("smoke"))  # never reuse full-size inputs
    for name in smoke or SMOKE:
        importlib.import_module(name).main(**(SMOKE[name][1] if smoke is not None else {}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", nargs="*", choices=list(SMOKE), metavar="NAME",
                        help="tiny sizes, for CI: every benchmark, or the ones named")
    main(parser.parse_args().smoke)
