"""Every performance target, in one run: python bench/run_all.py [--smoke]

--smoke runs each benchmark at a tiny size, with no targets asserted, so CI notices
when a benchmark stops working (tests/test_bench_smoke.py). ccusage's comparison
(bench/vs_ccusage.py, and bench/statusline.py --ccusage) needs npm and is run by hand.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import asgi  # noqa: E402
import cold_cli  # noqa: E402
import concurrency  # noqa: E402
import import_speed  # noqa: E402
import keys_scale  # noqa: E402
import labels_report  # noqa: E402
import model_check  # noqa: E402
import postgres  # noqa: E402
import reports_scale  # noqa: E402
import request_path  # noqa: E402
import statusline  # noqa: E402
from _common import inputs_folder, scratch  # noqa: E402


def main(smoke: bool) -> None:
    if smoke:
        out = scratch("smoke")
        inputs_folder(out)  # never reuse full-size inputs
        cold_cli.main(runs=2)
        request_path.main(seconds=0.2)
        model_check.main(seconds=0.2, busy=300)
        keys_scale.main(many=300, runs=2, seconds=0.4)
        reports_scale.main(sizes=(300, 3000), runs=1)
        labels_report.main(size=3000, runs=1)
        import_speed.main(records=3000, log_mb=(1,))
        concurrency.main(processes=2, seconds=0.5, rounds=1)
        postgres.main(seconds=0.4, processes=2, rounds=1)
        asgi.main(seconds=0.3, rounds=1)
        statusline.main(runs=2, responses=10)
    else:
        cold_cli.main()
        request_path.main()
        model_check.main()
        keys_scale.main()
        reports_scale.main()
        labels_report.main()
        import_speed.main()
        concurrency.main()
        postgres.main()
        asgi.main()
        statusline.main()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    main(parser.parse_args().smoke)
