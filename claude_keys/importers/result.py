"""What an import did: counted by the readers (in worker processes too) and the merge."""
from __future__ import annotations


class ImportResult:
    """(A plain class, not a dataclass: see importers._File.)"""

    def __init__(self):
        self.files = 0  # files found
        self.unchanged_files = 0  # Claude Code logs with nothing new since the last import
        self.lines = 0  # lines read in this run
        self.staged = 0
        self.imported = 0
        self.replaced = 0  # stored Claude Code requests that a bigger copy replaced
        self.already_stored = 0
        self.skipped: dict = {}  # reason -> count (Claude Code logs)
        self.unpriced_models: set = set()
        self.warnings: list = []  # files that could not be read, and why
        self.read_to: dict = {}  # Claude Code log -> offsets.identity()
        self.moved_files = 0  # Claude Code logs found at a new path (another project folder)
        self.relabelled = 0  # stored requests that took a moved log's new project
        self.projects: set = set()  # the Claude Code logs' project folders, read or unchanged

    def as_json(self) -> dict:
        return {"files": self.files, "unchanged_files": self.unchanged_files, "lines": self.lines,
                "requests": self.staged, "imported": self.imported, "replaced": self.replaced,
                "already_stored": self.already_stored, "moved_files": self.moved_files,
                "relabelled": self.relabelled, "skipped": dict(sorted(self.skipped.items())),
                "unpriced_models": sorted(self.unpriced_models), "warnings": list(self.warnings)}
