"""What compacting or expiring the prediction log did: pure records, for the CLI, the audit
trail and the team server's schedule."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FolderChange:
    """What compaction or expiry did to one folder (an hour of one deployment) of the log."""

    folder: str
    files_before: int
    files_after: int
    rows: int
    """Rows merged (compaction) or removed (expiry)."""
    bytes_before: int
    bytes_after: int


@dataclass
class UpkeepReport:
    """What one compaction or expiry did, folder by folder, per deployment."""

    dry_run: bool
    changes: dict[str, list[FolderChange]] = field(default_factory=dict)
    finished: int = 0
    """Files an interrupted compaction had merged and not deleted, deleted by this one."""

    def add(self, deployment: str, change: FolderChange) -> None:
        self.changes.setdefault(deployment, []).append(change)

    def totals(self, deployment: str) -> dict[str, int]:
        """Folders, files before and after, rows and bytes before and after, of `deployment`."""
        changes = self.changes.get(deployment, [])
        return {
            "folders": len(changes),
            "files_before": sum(c.files_before for c in changes),
            "files_after": sum(c.files_after for c in changes),
            "rows": sum(c.rows for c in changes),
            "bytes_before": sum(c.bytes_before for c in changes),
            "bytes_after": sum(c.bytes_after for c in changes),
        }
