"""Manifests: identity by content, and paths that cannot escape their root."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.hashing import digest_bytes
from loopml.domain.manifest import BlobRef, Manifest, diff_manifests, safe_relative_path
from loopml.errors import InvalidInput

_names = st.from_regex(r"[a-z0-9_]{1,8}(/[a-z0-9_]{1,8}){0,2}\.(csv|bin)", fullmatch=True)
_files = st.dictionaries(_names, st.binary(max_size=16), min_size=1, max_size=8)


def _manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest.of((p, BlobRef(digest_bytes(b), len(b))) for p, b in files.items())


@settings(max_examples=100, deadline=None)
@given(_files, st.randoms())
def test_the_digest_depends_on_content_not_on_listing_order(
    files: dict[str, bytes], rng: object
) -> None:
    shuffled = list(files.items())
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _manifest(files).digest == _manifest(dict(shuffled)).digest
    assert Manifest.from_dict(_manifest(files).to_dict()) == _manifest(files)


@settings(max_examples=100, deadline=None)
@given(_files, _names, st.binary(min_size=1, max_size=8))
def test_any_change_of_bytes_or_name_changes_the_digest(
    files: dict[str, bytes], name: str, extra: bytes
) -> None:
    changed = dict(files)
    changed[name] = files.get(name, b"") + extra
    assert _manifest(changed).digest != _manifest(files).digest
    diff = diff_manifests(_manifest(files), _manifest(changed))
    assert (diff.changed if name in files else diff.added) == (name,)


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "..", "", "C:/x", "a\\..\\..\\b"]
)
def test_paths_that_escape_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        safe_relative_path(path)


@pytest.mark.parametrize(
    ("path", "clean"), [("a/./b.csv", "a/b.csv"), ("a\\b.csv", "a/b.csv"), ("a/x/../b", "a/b")]
)
def test_paths_are_normalised(path: str, clean: str) -> None:
    assert safe_relative_path(path) == clean
