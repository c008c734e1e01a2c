"""Equal scikit-learn models, equal bytes: a skops file rewritten into a canonical form.

skops names its array files and `__id__` memo keys after `id(obj)` (memory addresses) and stamps
each zip entry with the save time, so two saves of one model differ. Artifacts are named by their
content, so the sklearn flavor rewrites every file it saves with `canonicalize_skops`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest date a zip entry can carry; every entry gets it instead of the save time."""


def canonicalize_skops(path: Path) -> None:
    """Rewrite a skops zip so equal models give equal bytes.

    skops names its array files and `__id__` memo keys after `id(obj)` (memory addresses) and
    stamps each entry with the save time. Here ids are renumbered and files renamed in the
    order the schema first mentions them, and entries are written sorted, stored, at ZIP_EPOCH.
    """
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(entries.pop("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}
    schema = _renumber(schema, ids, files, set(entries))
    renamed = {files.get(name, name): data for name, data in entries.items()}
    renamed["schema.json"] = json.dumps(schema, indent=2).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, whatever the platform
            info.external_attr = 0o644 << 16
            archive.writestr(info, renamed[name])
    path.write_bytes(buffer.getvalue())


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str], names: set[str]) -> Any:
    """`node` with `__id__` values numbered 1, 2, ... and `file` names from 1.npy, 2.bin, ..."""
    if isinstance(node, list):
        return [_renumber(item, ids, files, names) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, item in node.items():
        if key == "__id__" and type(item) is int:
            result[key] = ids.setdefault(item, len(ids) + 1)
        elif key == "file" and isinstance(item, str) and item in names:
            result[key] = files.setdefault(item, f"{len(files) + 1}{Path(item).suffix}")
        else:
            result[key] = _renumber(item, ids, files, names)
    return result
