"""How far each Claude Code log has been imported, so a re-run reads only what was
appended since (table import_files).

A log is known by the host that read it and its absolute path (each host has its own
~/.claude: in a PostgreSQL store shared by several hosts, the same path on two hosts
is two logs). With it are kept what identifies the file when it was read (device and
inode, size, modification time) and a fingerprint of its first and last bytes up to
where it was read. A re-run reads a log from there on, unless it is not the same file
any more: another inode, a smaller size, or (when it was touched since) other bytes
under the fingerprint, i.e. truncated and rewritten, or replaced, mean it is read
again from its start, and deduplication keeps that exact. The offset is where the
last complete line ends: an unfinished last line is read again next time.
"""
from __future__ import annotations

import os
import socket

from ..secret import _sha256
from ..values import now_ms

_EDGE = 4096  # bytes of each end of what was read, in the fingerprint
_INODE = (1 << 63) - 1  # inodes are unsigned 64-bit; the store's integers are signed


def host() -> str:
    return socket.gethostname() or "localhost"


def fingerprint(f, offset: int) -> str:
    """Of the first and the last (up to) 4 KB before `offset` of an open binary file."""
    head = os.pread(f.fileno(), min(_EDGE, offset), 0)
    tail = os.pread(f.fileno(), min(_EDGE, offset), max(0, offset - _EDGE))
    return _sha256(head + b"\0" + tail).hexdigest()[:32]


def identity(f, offset: int) -> tuple:
    """What save() keeps of a file read up to `offset` (computed by its reader, which
    has it open): (offset, fingerprint, device, inode, size, mtime)."""
    st = os.fstat(f.fileno())
    return offset, fingerprint(f, offset), st.st_dev, st.st_ino & _INODE, st.st_size, st.st_mtime_ns


class Offsets:
    """This host's offsets, read once; `start()` says where a log's new lines begin."""

    def __init__(self, conn, *, full: bool = False):
        self.host = host()
        self.known: dict = {}
        if not full:
            for path, *known in conn.execute(
                    "SELECT path, device, inode, size, mtime_ns, read_to, fingerprint FROM import_files "
                    "WHERE host = ?", (self.host,)):
                self.known[path] = known

    def start(self, path: str, st: os.stat_result) -> int:
        """Where to read `path` (stat'ed as `st`) from: 0, or the end of what an earlier
        import read of this same file."""
        known = self.known.get(path)
        if known is None:
            return 0
        device, inode, size, mtime, read_to, mark = known
        if (st.st_dev, st.st_ino & _INODE) != (device, inode) or st.st_size < read_to:
            return 0
        if (st.st_size, st.st_mtime_ns) == (size, mtime):
            return read_to  # untouched since it was read
        try:
            with open(path, "rb") as f:
                return read_to if fingerprint(f, read_to) == mark else 0
        except OSError:
            return 0

    def save(self, conn, read_to: dict) -> None:
        """Remember how far each log was read (after its requests are stored)."""
        now = now_ms()
        rows = []
        for path, (offset, mark, device, inode, size, mtime) in read_to.items():
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                continue  # an undecodable file name: such a log is read whole each time
            rows.append((self.host, path, device, inode, size, mtime, offset, mark, now))
        if not rows:
            return
        with conn.transaction():
            conn.executemany(
                "INSERT INTO import_files (host, path, device, inode, size, mtime_ns, read_to, "
                "fingerprint, read_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, path) "
                "DO UPDATE SET device = excluded.device, inode = excluded.inode, size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, read_to = excluded.read_to, "
                "fingerprint = excluded.fingerprint, read_at_ms = excluded.read_at_ms", rows)
