"""How far each Claude Code log has been imported, so a re-run reads only what was
appended since (table import_files).

A log is known by the host that read it and its absolute path (each host has its own
~/.claude: in a PostgreSQL store shared by several hosts, the same path on two hosts
is two logs). With it are kept what identifies the file when it was read (device and
inode, size, modification time) and a checksum of every byte up to where it was read.
A re-run reads a log from there on, unless it is not the same file any more: another
inode, a smaller size, or (when its size or modification time changed) a checksum of
that prefix that differs, i.e. rewritten anywhere, in place or truncated, or replaced.
Then it is read again from its start, and deduplication keeps that exact. Only an
untouched file (same size and modification time) is trusted without the checksum.

The checksum is CRC-32 and Adler-32 of the prefix (both resumable from their value,
so a reader extends the stored one over what it appended, and both run at GB/s:
far cheaper than parsing). An older store's fingerprint (of the first and last 4 KB)
does not match the new form: such a log is read whole once, exactly. The offset is
where the last complete line ends: an unfinished last line is read again next time.
"""
from __future__ import annotations

import os
import zlib

from ..values import now_ms

_INODE = (1 << 63) - 1  # inodes are unsigned 64-bit; the store's integers are signed
_FORM = "crc:"  # the fingerprint's form: "crc:" + CRC-32 + Adler-32, hex
_BLOCK = 1 << 20
EMPTY = (0, 0, 1)  # the checksum of no bytes: (offset, CRC-32, Adler-32)


def host() -> str:
    """This machine's name: gethostname(), which is uname's node name where there is
    uname (read from it: the socket module costs `usage statusline` a few ms to load)."""
    try:
        name = os.uname().nodename
    except AttributeError:  # Windows
        import socket

        name = socket.gethostname()
    return name or "localhost"


def unchanged(conn, paths: list[str]) -> bool:
    """Whether every log in `paths` is as the last import on this host left it (the same
    file, size and modification time): then there is nothing to read, and `usage
    statusline` loads neither the importer nor the price table. One read. (A path that
    is not UTF-8 is never remembered, so such a log is read again each time.)"""
    try:
        for path in paths:
            path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    marks = ", ".join("?" * len(paths))
    known = {path: tuple(rest) for path, *rest in conn.execute(
        f"SELECT path, device, inode, size, mtime_ns FROM import_files WHERE host = ? AND path IN ({marks})",
        (host(), *paths))}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if known.get(path) != (st.st_dev, st.st_ino & _INODE, st.st_size, st.st_mtime_ns):
            return False
    return True


def checksum(f, end: int, seed: tuple = EMPTY) -> tuple:
    """(end, CRC-32, Adler-32) of the bytes before `end` of an open binary file,
    continuing `seed`, the checksum of the bytes before its own offset."""
    offset, crc, adler = seed
    while offset < end:
        block = os.pread(f.fileno(), min(_BLOCK, end - offset), offset)
        if not block:
            break  # shorter than it was: the checksum then matches no earlier one
        crc, adler = zlib.crc32(block, crc), zlib.adler32(block, adler)
        offset += len(block)
    return offset, crc, adler


def fingerprint(state: tuple) -> str:
    return f"{_FORM}{state[1]:08x}{state[2]:08x}"


def seed_of(read_to: int, mark: str) -> tuple | None:
    """The checksum state a stored fingerprint stands for (None: an older form)."""
    if not mark.startswith(_FORM) or len(mark) != len(_FORM) + 16:
        return None
    return read_to, int(mark[len(_FORM):][:8], 16), int(mark[len(_FORM) + 8:], 16)


def identity(f, offset: int, seed: tuple = EMPTY) -> tuple:
    """What save() keeps of a file read up to `offset` (computed by its reader, which
    has it open, from `seed`: the checksum of where its reading began):
    (offset, fingerprint, device, inode, size, mtime)."""
    st = os.fstat(f.fileno())
    return (offset, fingerprint(checksum(f, offset, seed)), st.st_dev, st.st_ino & _INODE, st.st_size,
            st.st_mtime_ns)


def _tail(path: str) -> tuple:
    """What stays the same when a log moves to another project folder: its name, and for
    a subagent's log its session folder (<session>/subagents/agent-….jsonl)."""
    parts = path.split(os.sep)
    return tuple(parts[-3:]) if len(parts) >= 3 and parts[-2] == "subagents" else tuple(parts[-1:])


class Offsets:
    """This host's offsets, read once; `start()` says where a log's new lines begin, and
    `moved_from()` where a log was read before it moved (its old path is gone)."""

    def __init__(self, conn, *, full: bool = False):
        self.host = host()
        self.full = full
        self.known: dict = {}
        self.moves: list = []  # (new path, its project, old path), found by moved_from()
        self._gone = None  # (by identity, by tail) of known paths, built on first need
        for path, *known in conn.execute(
                "SELECT path, device, inode, size, mtime_ns, read_to, fingerprint FROM import_files "
                "WHERE host = ?", (self.host,)):
            self.known[path] = known

    def moved_from(self, path: str, st: os.stat_result) -> str | None:
        """The path this log was read at by an earlier import, when it has moved since:
        a path not known, and a known one that no longer exists with the same identity
        (device and inode: a rename) or the same name (a copy and delete, across disks)."""
        if path in self.known or not self.known:
            return None
        if self._gone is None:
            by_identity, by_tail = {}, {}
            for old, (device, inode, *_) in self.known.items():
                by_identity.setdefault((device, inode), []).append(old)
                by_tail.setdefault(_tail(old), []).append(old)
            self._gone = by_identity, by_tail
        by_identity, by_tail = self._gone
        for old in by_identity.get((st.st_dev, st.st_ino & _INODE), []) + by_tail.get(_tail(path), []):
            if old != path and not os.path.lexists(old):
                return old
        return None

    def start(self, path: str, st: os.stat_result) -> tuple[int, tuple]:
        """Where to read `path` (stat'ed as `st`) from: 0, or the end of what an earlier
        import read of this same file; and the checksum of the bytes before it."""
        known = None if self.full else self.known.get(path)
        if known is None:
            return 0, EMPTY
        device, inode, size, mtime, read_to, mark = known
        if (st.st_dev, st.st_ino & _INODE) != (device, inode) or st.st_size < read_to:
            return 0, EMPTY
        seed = seed_of(read_to, mark)
        if (st.st_size, st.st_mtime_ns) == (size, mtime):
            return read_to, seed or EMPTY  # untouched since it was read
        if seed is None:
            return 0, EMPTY
        try:
            with open(path, "rb") as f:
                return (read_to, seed) if checksum(f, read_to) == seed else (0, EMPTY)
        except OSError:
            return 0, EMPTY

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
        gone = [(self.host, old) for _, _, old in self.moves]
        if not rows and not gone:
            return
        with conn.transaction():
            if gone:  # a moved log is known by its new path from now on
                conn.executemany("DELETE FROM import_files WHERE host = ? AND path = ?", gone)
            if not rows:
                return
            conn.executemany(
                "INSERT INTO import_files (host, path, device, inode, size, mtime_ns, read_to, "
                "fingerprint, read_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, path) "
                "DO UPDATE SET device = excluded.device, inode = excluded.inode, size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, read_to = excluded.read_to, "
                "fingerprint = excluded.fingerprint, read_at_ms = excluded.read_at_ms", rows)
