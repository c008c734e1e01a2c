"""The `TableDescriber` port: schema and profile of CSV and Parquet files, via Arrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.adapters.table_files import describe_table_file, is_tabular


class ArrowTableDescriber:
    """Arrow is imported on the first table, so adding other files never pays for it."""

    def is_tabular(self, path: Path) -> bool:
        return is_tabular(path)

    def describe(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        schema, profile = describe_table_file(path)
        return schema.to_dict(), profile.to_dict()
