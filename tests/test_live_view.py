"""The live view (`usage watch`, `usage blocks --live`; claude_keys/watch.py and
cli/live.py): on a pseudo-terminal it redraws every --interval seconds, importing
what Claude Code appended to its logs each time, and Ctrl-C leaves the terminal as
it was (cursor shown, alternate screen left), exit 0, the process gone. Off a
terminal it prints one snapshot."""
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.helpers.live_logs import add_requests, midday_zone, transcript
from tests.helpers.processes import alive, dies_with_this_process
from tests.helpers.run import EXE, cli, create, proc, record_at

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
SHOW_CURSOR, LEAVE_ALTERNATE_SCREEN = b"\x1b[?25h", b"\x1b[?1049l"


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """Claude Code's config folder, where the live view finds the logs it imports."""
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CLAUDE_API_TZ", midday_zone())
    return transcript(config)


class Screen:
    """claude-api on a new pseudo-terminal (100 x 40), read as it draws."""

    def __init__(self, *args):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.child = subprocess.Popen([EXE, *map(str, args)], stdin=slave, stdout=slave, stderr=slave, env=env,
                                      preexec_fn=dies_with_this_process())
        os.close(slave)
        self.raw = b""

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: the program has gone
                    return
                if not data:
                    return
                self.raw += data

    def wait_for(self, pattern: bytes, seconds: float = 30) -> re.Match:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            found = list(re.finditer(pattern, ANSI.sub(b"", self.raw)))
            if found:
                return found[-1]
            self.read(0.1)
        raise AssertionError(f"{pattern!r} never shown; the screen: {ANSI.sub(b'', self.raw)[-2000:]!r}")

    def frames(self) -> int:
        return ANSI.sub(b"", self.raw).count(b"Usage, refreshed every")

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        os.close(self.master)


@pytest.fixture
def screen():
    opened = []
    yield lambda *args: opened.append(Screen(*args)) or opened[-1]
    for s in opened:
        s.close()


def test_two_ticks_an_appended_log_shows_and_ctrl_c_restores_the_terminal(logs, screen):
    add_requests(logs, 1, 2, minutes_ago=[3, 2])
    s = screen("usage", "watch", "--interval", "0.3")
    assert s.wait_for(rb"requests +2\b")
    assert s.wait_for(rb"cost +\$0\.04\b")
    add_requests(logs, 3, 1, minutes_ago=[1])  # Claude Code goes on writing
    assert s.wait_for(rb"requests +3\b")
    assert s.wait_for(rb"cost +\$0\.06\b")
    assert s.frames() >= 2
    drawn = len(s.raw)
    os.kill(s.child.pid, signal.SIGINT)  # Ctrl-C
    assert s.child.wait(timeout=15) == 0
    s.read(0.5)
    after = s.raw[drawn:]
    assert SHOW_CURSOR in after and LEAVE_ALTERNATE_SCREEN in after
    assert after.rfind(SHOW_CURSOR) > after.rfind(b"\x1b[?25l")  # the cursor is left shown
    assert b"Traceback" not in s.raw and b"Error" not in s.raw
    assert not alive(s.child.pid)


def test_blocks_live_is_the_same_view_and_sigterm_leaves_it_too(logs, screen):
    add_requests(logs, 1, 1, minutes_ago=[2])
    s = screen("usage", "blocks", "--live", "--interval", "0.3", "--cost-limit", "0.10")
    assert s.wait_for(rb"cost +\[.*\] 20% of \$0\.10")
    os.kill(s.child.pid, signal.SIGTERM)
    assert s.child.wait(timeout=15) == 0
    s.read(0.5)
    assert s.raw.rstrip(b"\r\n ").endswith(SHOW_CURSOR + LEAVE_ALTERNATE_SCREEN) or (
        SHOW_CURSOR in s.raw and LEAVE_ALTERNATE_SCREEN in s.raw)
    assert not alive(s.child.pid)


def test_off_a_terminal_one_snapshot(logs):
    add_requests(logs, 1, 3, minutes_ago=[3, 2, 1])
    start = time.monotonic()
    r = proc("usage", "watch", "--interval", "60", "--cost-limit", "0.12", "--token-limit", "72000")
    assert r.exit_code == 0, r
    assert time.monotonic() - start < 30  # it did not wait for a second refresh
    out = r.stdout
    assert out.count("Active block") == 1 and "Imported 3 new requests." in out
    assert re.search(r"cost +\$0\.06 +projected \$", out)
    assert re.search(r"tokens +36,000 +projected [\d,]+", out)
    assert re.search(r"burn rate +\$1\.80/h +18,000 tokens/min", out)
    assert re.search(r"requests +3\n", out)
    assert "cost        50% of $0.12, projected" in out
    assert "tokens      50% of 72,000 tokens, projected" in out
    assert "\x1b" not in out and "█" not in out  # no escapes and no bars in a pipe
    again = proc("usage", "blocks", "--live")
    assert again.exit_code == 0 and "Active block" in again.stdout and "Imported" not in again.stdout


def test_no_active_block(logs):
    r = proc("usage", "watch")
    assert r.exit_code == 0 and "No active 5-hour block: no usage yet." in r.stdout, r
    key = create()
    record_at(key["id"], "2026-01-05T10:00:00Z", cost="1")
    r = proc("usage", "watch", "--no-import")
    ended = datetime(2026, 1, 5, 15, tzinfo=timezone.utc).astimezone(ZoneInfo(os.environ["CLAUDE_API_TZ"]))
    assert f"No active 5-hour block: the last one ended at {ended:%Y-%m-%d %H:%M}." in r.stdout, r  # (the midday zone's)


def test_the_budgets_closest_to_their_limits_come_first(logs):
    spends = create("--name", "spender", "--monthly-budget", "1")
    create("--name", "saver", "--monthly-budget", "100")
    create("--name", "no-budget")
    assert cli("projects", "set", "p", "--total-budget", "4").exit_code == 0
    record_at(spends["id"], "1h", cost="0.8")
    r = proc("usage", "watch", "--no-import")
    assert r.exit_code == 0, r
    shown = r.stdout.split("Budgets closest to their limits\n")[1].splitlines()
    assert shown[:3] == ["  key spender (p), monthly: $0.80 of $1.00 (80%)",
                         "  project p, total: $0.80 of $4.00 (20%)",
                         "  key saver (p), monthly: $0.00 of $100.00 (0%)"]
    assert "no-budget" not in r.stdout


def test_token_limit_max_is_the_biggest_earlier_block(logs):
    key = create()
    record_at(key["id"], "2026-01-05T10:00:00Z", inp=50_000, out=0, cost="1")
    record_at(key["id"], "2026-01-06T10:00:00Z", inp=20_000, out=0, cost="1")
    add_requests(logs, 1, 1, minutes_ago=[2])
    r = proc("usage", "watch", "--token-limit", "max")
    assert "tokens      24% of 50,000 tokens" in r.stdout, r


@pytest.mark.one_backend
@pytest.mark.parametrize("args", [["--interval", "0"], ["--interval", "soon"], ["--token-limit", "lots"],
                                  ["--cost-limit", "-1"]])
def test_bad_options_are_one_line_and_exit_2(args):
    r = cli("usage", "watch", *args)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r


def test_live_wants_no_data_format(logs):
    r = cli("usage", "blocks", "--live", "--json")
    assert r.exit_code == 2 and "--live" in r.stderr, r
