"""How far each Claude Code log has been imported, so a re-run reads only what was
appended since (table import_files).

A log is known by the host that read it and its real path (each host has its own
~/.claude: in a PostgreSQL store shared by several hosts, the same path on two hosts
is two logs). With it are kept what identifies the file (device and inode, its size)
and a fingerprint of its first and last bytes up to where it was read. A re-run reads
a log from there on, unless the log is not the same file any more: another inode, a
smaller size, or other bytes under the fingerprint (truncated and rewritten, replaced)
mean it is read again from its start, and deduplication keeps that exact. The offset
is where the last complete line ends: an unfinished last line is read again next time.
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


def fingerprint(path: str, offset: int) -> str:
    """Of the first and the last (up to) 4 KB before `offset`."""
    with open(path, "rb") as f:
        head = f.read(min(_EDGE, offset))
        f.seek(max(0, offset - _EDGE))
        tail = f.read(min(_EDGE, offset))
    return _sha256(head + b"\0" + tail).hexdigest()[:32]


class Offsets:
    """This host's offsets, read once; `start()` says where a log's new lines begin."""

    def __init__(self, conn, *, full: bool = False):
        self.host = host()
        self.known: dict = {}
        if not full:
            for path, device, inode, size, read_to, mark in conn.execute(
                    "SELECT path, device, inode, size, read_to, fingerprint FROM import_files "
                    "WHERE host = ?", (self.host,)):
                self.known[path] = (device, inode, size, read_to, mark)

    def start(self, path: str, st: os.stat_result) -> int:
        """Where to read `path` (stat'ed as `st`) from: 0, or the end of what an earlier
        import read of this same file."""
        known = self.known.get(os.path.realpath(path))
        if known is None:
            return 0
        device, inode, _, read_to, mark = known
        if (st.st_dev, st.st_ino & _INODE) != (device, inode) or st.st_size < read_to:
            return 0
        try:
            return read_to if fingerprint(path, read_to) == mark else 0
        except OSError:
            return 0

    def save(self, conn, read_to: dict) -> None:
        """Remember how far each log was read (after its requests are stored)."""
        rows = []
        now = now_ms()
        for path, offset in read_to.items():
            try:
                path.encode("utf-8")  # an undecodable file name: read whole each time
                st = os.stat(path)
                rows.append((self.host, os.path.realpath(path), st.st_dev, st.st_ino & _INODE,
                             st.st_size, offset, fingerprint(path, offset), now))
            except (OSError, UnicodeEncodeError):
                continue  # gone meanwhile: read it whole if it comes back
        if not rows:
            return
        with conn.transaction():
            conn.executemany(
                "INSERT INTO import_files (host, path, device, inode, size, read_to, fingerprint, "
                "read_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, path) DO UPDATE SET "
                "device = excluded.device, inode = excluded.inode, size = excluded.size, "
                "read_to = excluded.read_to, fingerprint = excluded.fingerprint, "
                "read_at_ms = excluded.read_at_ms", rows)
