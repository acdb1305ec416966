"""What an import did: counted by the readers (in worker processes too) and the merge."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportResult:
    files: int = 0  # files found
    unchanged_files: int = 0  # Claude Code logs with nothing new since the last import
    lines: int = 0  # lines read in this run
    staged: int = 0
    imported: int = 0
    replaced: int = 0  # stored Claude Code requests that a bigger copy replaced
    already_stored: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count (Claude Code logs)
    unpriced_models: set = field(default_factory=set)
    warnings: list = field(default_factory=list)  # files that could not be read, and why
    read_to: dict = field(default_factory=dict)  # Claude Code log -> offsets.identity()
    projects: set = field(default_factory=set)  # the Claude Code logs' project folders, read or unchanged

    def as_json(self) -> dict:
        return {"files": self.files, "unchanged_files": self.unchanged_files, "lines": self.lines,
                "requests": self.staged, "imported": self.imported, "replaced": self.replaced,
                "already_stored": self.already_stored, "skipped": dict(sorted(self.skipped.items())),
                "unpriced_models": sorted(self.unpriced_models), "warnings": list(self.warnings)}
