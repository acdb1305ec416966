"""Labels follow files: a Claude Code log moved to another project folder gives its
requests the new project.

An incremental import finds a moved log by offsets.Offsets.moved_from() (its old path
is gone, and it has the same identity or name). It is read whole at its new path, but
its requests are stored already, so they would keep the old folder's project; here
they take the new one. The requests of a log are those of its session in the old
project (a session's logs live in one project folder). They leave the store with their
roll-ups and come back under the new project in one write transaction, so every
report and budget is exact at once, on either backend.
"""
from __future__ import annotations

import os

from ..db.rollups import USAGE_COLUMNS, remove_requests
from .claude_code import _session_of_file

# Claude Code requests' ids ("cc:…", "cc-line:…"): only they take a project from a folder.
_CLAUDE_CODE = "request_id >= 'cc' AND request_id < 'cd'"


def old_project(new_path: str, new_project: str, old_path: str) -> str | None:
    """The project the log had at its old path: the folder at the place its new project
    folder holds in the new path."""
    new, old = new_path.split(os.sep), old_path.split(os.sep)
    if new_project not in new:
        return None
    depth = len(new) - 1 - new[::-1].index(new_project)  # the project folder nearest the file
    below = len(new) - depth
    return old[-below] if len(old) >= below else None


def relabel(conn, moves) -> int:
    """Give the requests of each moved log (new path, new project, old path) the new
    project. Returns how many requests changed project."""
    changes = []
    for new_path, project, old_path in moves:
        before = old_project(new_path, project, old_path)
        if before is not None and before != project:
            changes.append((_session_of_file(new_path), before, project))
    if not changes:
        return 0
    columns = ", ".join(USAGE_COLUMNS)
    moved = 0
    with conn.write():
        for session, before, after in dict.fromkeys(changes):
            conn.execute("DROP TABLE IF EXISTS relabelled")
            conn.execute(f"CREATE TEMP TABLE relabelled AS SELECT * FROM usage WHERE session_id = ? "
                         f"AND project_id = ? AND {_CLAUDE_CODE}", (session, before))
            count = remove_requests(conn, "relabelled")
            if count:
                conn.execute("UPDATE relabelled SET project_id = ?", (after,))
                conn.write_usage(f"INSERT INTO usage ({columns}) SELECT {columns} FROM relabelled "
                                 "ORDER BY request_id")
                moved += count
            conn.execute("DROP TABLE relabelled")
    return moved
