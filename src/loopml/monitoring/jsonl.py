"""JSON text columns of the prediction log, read by Arrow for a whole window at once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def read_objects(column: pa.ChunkedArray) -> pa.Table:
    """JSON objects, one per row, as an Arrow table: one newline-delimited buffer, one parse."""
    import pyarrow.json as pj

    if len(column) == 0:
        return pa.table({})
    whole = pc.fill_null(column.combine_chunks(), "{}")  # a null row stays a row, of nulls
    lines = pc.binary_join_element_wise(whole, "", "\n")
    _, offset_buffer, data_buffer = lines.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    data = data_buffer[int(offsets[0]) : int(offsets[-1])]
    block = max(1 << 20, min(data.size, 1 << 26))
    return pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=block))
