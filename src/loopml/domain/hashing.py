"""Content identity: BLAKE3 digests of bytes and of canonical JSON, prefixed with the algorithm.

A digest reads `blake3:<64 hex>`. The prefix lets a later algorithm live beside this one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NewType

import blake3

Digest = NewType("Digest", str)

ALGORITHM = "blake3"
_DIGEST_RE = re.compile(r"^blake3:[0-9a-f]{64}$")
CHUNK_BYTES = 8 * 1024 * 1024
"""Size of the chunks large files are read and hashed in."""
_THREADED_MIN_BYTES = 4 * 1024 * 1024


def new_hasher() -> Any:
    """A fresh incremental BLAKE3 hasher; large updates use all cores."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def update(hasher: Any, chunk: bytes | memoryview) -> None:
    """Feed `chunk` to `hasher` (threaded only when the chunk is big enough to pay for it)."""
    hasher.update(chunk)


def finish(hasher: Any) -> Digest:
    """The prefixed digest of everything fed to `hasher`."""
    return Digest(f"{ALGORITHM}:{hasher.hexdigest()}")


def digest_bytes(data: bytes | memoryview) -> Digest:
    """The digest of `data`."""
    hasher = new_hasher() if len(data) >= _THREADED_MIN_BYTES else blake3.blake3()
    hasher.update(data)
    return finish(hasher)


def canonical_json(value: Any) -> bytes:
    """Sorted-key, compact, UTF-8 JSON: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_json(value: Mapping[str, Any] | list[Any]) -> Digest:
    """The digest of the canonical JSON of `value`."""
    return digest_bytes(canonical_json(value))


def is_digest(text: str) -> bool:
    """True when `text` is a well-formed `blake3:<hex>` digest."""
    return isinstance(text, str) and _DIGEST_RE.fullmatch(text) is not None


def hex_part(digest: str) -> str:
    """The hex after the algorithm prefix."""
    return digest.split(":", 1)[1]
