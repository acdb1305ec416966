"""Shared by the benchmarks: a scratch store, timing of whole processes, reporting.

Targets are ratios to a floor measured in the same run on the same machine, because
absolute times on shared machines drift: runs of the command and of its floor are
interleaved and compared by their medians.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = shutil.which("claude-api", path=os.path.dirname(sys.executable)) or shutil.which("claude-api")


def scratch(name: str = "bench") -> Path:
    """A temporary folder, removed when the benchmark exits."""
    import atexit

    folder = Path(tempfile.mkdtemp(prefix=f"claude-api-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


_inputs: list[Path] = []


def inputs_folder(use: Path | None = None) -> Path:
    """Where generated inputs (logs, big stores) go: CLAUDE_API_BENCH_CACHE to keep them
    between runs (they take minutes to make at full size), else one temporary folder for
    the run. `use` sets it (run_all --smoke: never reuse full-size inputs)."""
    if use is not None:
        _inputs[:] = [use]
    if not _inputs:
        kept = os.environ.get("CLAUDE_API_BENCH_CACHE")
        if kept:
            Path(kept).mkdir(parents=True, exist_ok=True)
        _inputs.append(Path(kept) if kept else scratch("inputs"))
    return _inputs[0]


def env_for(db: Path) -> dict:
    env = {**os.environ, "CLAUDE_API_DB": str(db), "CLAUDE_API_NO_KEYRING": "1"}
    env.pop("PYTHONPATH", None)
    # Measured as an installed package runs, its bytecode cached (pip compiles it when it
    # installs): with PYTHONDONTWRITEBYTECODE set, an editable install would compile every
    # module it loads in every process (~40 ms each on a 2-core machine).
    cache = env.get("PYTHONDONTWRITEBYTECODE") and _bytecode_folder()
    if cache:
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


_bytecode: list[str] = []
# Every module of the package, and what they import, loaded once: a cache filled before
# anything is timed (a bytecode prefix hides the standard library's own cached bytecode).
_WARM = ("import importlib, pkgutil, claude_keys, concurrent.futures.process, multiprocessing.spawn\n"
         "for m in pkgutil.walk_packages(claude_keys.__path__, 'claude_keys.'):\n"
         "    try:\n"
         "        importlib.import_module(m.name)\n"
         "    except Exception:\n"
         "        pass\n")


def _bytecode_folder() -> str:
    """'' when the installed package has its bytecode cached already (a regular install);
    otherwise a temporary folder to cache it in, removed when the benchmark exits, never
    the checkout, filled before it is used."""
    if not _bytecode:
        probe = ("import claude_keys, importlib.util, os\n"
                 "print(os.path.exists(importlib.util.cache_from_source(claude_keys.__file__)))")
        cached = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True).stdout
        folder = "" if cached.strip() == "True" else str(scratch("bytecode"))
        if folder:
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
            subprocess.run([sys.executable, "-P", "-c", _WARM], env={**env, "PYTHONPYCACHEPREFIX": folder},
                           capture_output=True)
        _bytecode.append(folder)
    return _bytecode[0]


def run(args: list[str], env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(args)}")
    return elapsed


def interleaved(commands: dict[str, list[str]], env: dict, runs: int) -> dict[str, float]:
    """Median wall time of each command, running them in turn `runs` times."""
    times = {name: [] for name in commands}
    for name, args in commands.items():  # warm the page cache and .pyc files
        timed(args, env)
    for _ in range(runs):
        for name, args in commands.items():
            times[name].append(timed(args, env))
    return {name: statistics.median(t) for name, t in times.items()}


FLOOR_IMPORT = [sys.executable, "-c", "import click, sqlite3"]


def report(title: str, rows: list[tuple]) -> None:
    """rows: (what, figure, floor, ratio, target, verdict)."""
    print(f"\n## {title}\n")
    print("| what | measured | floor | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    sys.stdout.flush()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def create_key(env: dict, *args: str) -> tuple[str, str]:
    import json

    done = run([EXE, "keys", "create", "--project-id", "bench", "--json", *args], env)
    if done.returncode:
        raise SystemExit(done.stderr)
    key = json.loads(done.stdout)
    return key["key"], key["id"]
