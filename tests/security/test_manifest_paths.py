"""Paths inside manifests never escape their folder: refused where a manifest is made, where the
team server accepts one, and again where files are written (a bad record already stored is
refused with a clear error, never followed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.hashing import digest_bytes
from loopml.domain.manifest import BlobRef, Manifest, check_manifest_path, safe_relative_path
from loopml.errors import IntegrityError, InvalidInput
from loopml.services.folders import target_inside
from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, live_server

LOOPML = str(Path(sys.executable).parent / "loopml")
ESCAPES = [
    "../../escaped.txt",
    "../escaped.txt",
    "a/../../escaped.txt",
    "/tmp/escaped.txt",
    "//server/share/x",
    "C:/escaped.txt",
    "c:escaped.txt",
    "a\\..\\..\\escaped.txt",
    "a/./b.txt",
    "a//b.txt",
    "a/",
    ".",
    "..",
    "",
    "a\x00b",
    "line\nbreak",
    "x" * 1001,
    "a/" + "y" * 256,
]
BLOB = b"the bytes of a harmless file\n"
DIGEST = digest_bytes(BLOB)


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ESCAPES, ids=repr)
def test_the_rule_refuses_every_escape_and_every_second_spelling(path: str) -> None:
    with pytest.raises(InvalidInput):
        check_manifest_path(path)
    with pytest.raises(InvalidInput):
        Manifest({path: BlobRef(DIGEST, len(BLOB))})
    with pytest.raises(InvalidInput):
        Manifest.from_dict({"files": {path: {"digest": DIGEST, "size": len(BLOB)}}})


@pytest.mark.parametrize(
    "entry",
    [
        {"digest": "blake3:../../x", "size": 1},
        {"digest": DIGEST + "\n", "size": 1},
        {"digest": DIGEST, "size": -1},
        {"digest": DIGEST, "size": True},
        {"digest": DIGEST},
        "not an object",
    ],
    ids=repr,
)
def test_a_manifest_names_only_well_formed_blobs(entry: Any) -> None:
    with pytest.raises(InvalidInput):
        Manifest.from_dict({"files": {"ok.csv": entry}})


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["..", ".", "", "a", "b.csv", "C:", "\\", "/", "~", "\x00", "\n"]),
            st.text(max_size=12),
        ),
        max_size=8,
    ).map("/".join)
    | st.text(max_size=40)
)
def test_any_path_is_refused_or_lands_inside_the_folder(path: str) -> None:
    folder = Path(os.environ.get("TMPDIR", "/tmp")).resolve() / "loopml-manifest-property"
    try:
        accepted = check_manifest_path(path)
    except InvalidInput:
        return
    assert accepted == path
    target = target_inside(folder, path)
    assert folder in target.parents
    assert os.path.normpath(target) == str(target)  # nothing left to normalise: one spelling


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_local_names_are_normalised_into_the_rule_or_refused(path: str) -> None:
    try:
        clean = safe_relative_path(path)
    except InvalidInput:
        return
    assert check_manifest_path(clean) == clean


def test_a_link_inside_the_target_folder_cannot_lead_outside(tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "data").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside"):
        target_inside(dest, "data/escaped.txt")
    assert target_inside(dest, "other/file.txt") == dest.resolve() / "other" / "file.txt"


# -- through the team server ----------------------------------------------------------------


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with live_server(make_settings(), admin="alice") as running:
        yield running


def _api(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {server.token}"}
    )


@pytest.mark.parametrize("path", ["../../escaped.txt", "/tmp/escaped.txt", "a\\..\\..\\x"])
def test_the_server_refuses_a_dataset_manifest_that_escapes(server: LiveServer, path: str) -> None:
    with _api(server) as api:
        assert api.put(f"/blobs/{DIGEST}", content=BLOB).status_code == 201
        manifest = {"files": {path: {"digest": DIGEST, "size": len(BLOB)}}}
        new = {"project": "default", "name": "evil", "manifest": manifest, "message": ""}
        body = {
            "new": {**new, "schema": None, "profile": None},
            "event": {"action": "dataset.version_added", "entity": "dataset:default/evil"},
        }
        answer = api.post("/projects/default/datasets/evil/versions", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "InvalidInput"
        assert "Path" in answer.json()["error"]
        assert api.get("/projects/default/datasets").json() == []


def test_the_server_refuses_a_model_manifest_that_escapes(server: LiveServer) -> None:
    with _api(server) as api:
        assert api.put(f"/blobs/{DIGEST}", content=BLOB).status_code == 201
        new = {
            "project": "default",
            "name": "evil",
            "run_id": None,
            "flavor": "python",
            "flavor_info": {},
            "manifest": {"files": {"../../model.pkl": {"digest": DIGEST, "size": len(BLOB)}}},
            "signature": {},
            "metrics": {},
        }
        body = {
            "new": new,
            "event": {"action": "model.registered", "entity": "model:default/evil"},
        }
        answer = api.post("/projects/default/models/evil/versions", json=body)
        assert answer.status_code == 400, answer.text
        assert "Path" in answer.json()["error"]
        assert api.get("/projects/default/models").json() == []


# -- a bad record already stored is never followed ------------------------------------------


def _stored_workspace(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An embedded workspace with dataset `evil@1` and model `evil/1`, whose stored manifests
    were then rewritten (behind loopml's back) to name `../../escaped.txt`."""
    import sqlalchemy as sa

    from loopml.bootstrap import open_workspace, reset_default_workspace

    home = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(home)
    source = tmp_path / "evil.txt"
    source.write_bytes(BLOB)
    ws = open_workspace(Settings.from_env(env))
    try:
        ws.data.add(source, name="evil", project="default")
        ws.registry.register(_fitted(), "evil", project="default")
    finally:
        ws.close()
        reset_default_workspace()
    engine = sa.create_engine(f"sqlite:///{home / 'loopml.db'}")
    files = {"../../escaped.txt": {"digest": DIGEST, "size": len(BLOB)}}
    evil = json.dumps({"schema_version": 1, "files": files})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE dataset_versions SET manifest = :m"), {"m": evil})
        conn.execute(sa.text("UPDATE model_versions SET manifest = :m"), {"m": evil})
    engine.dispose()
    return env, home


def _fitted() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0]], [0, 1])


def test_data_get_refuses_a_stored_manifest_that_escapes(tmp_path: Path) -> None:
    env, _ = _stored_workspace(tmp_path)
    out = tmp_path / "deep" / "er" / "out"
    done = subprocess.run(
        [LOOPML, "data", "get", "evil@1", "-o", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "dataset evil@1 is refused" in done.stderr
    assert "../../escaped.txt" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("escaped.txt"))


def test_the_sdk_refuses_to_download_or_load_a_stored_manifest_that_escapes(
    tmp_path: Path,
) -> None:
    from loopml.bootstrap import open_workspace

    env, _ = _stored_workspace(tmp_path)
    ws = open_workspace(Settings.from_env(env))
    try:
        out = tmp_path / "deep" / "er" / "out"
        with pytest.raises(IntegrityError, match=r"dataset evil@1 is refused.*escaped"):
            ws.data.get("evil@1", "default", out)
        with pytest.raises(IntegrityError, match=r"model evil/1 is refused.*escaped"):
            ws.registry.load("evil/1", project="default", trust=True)
    finally:
        ws.close()
    assert not list(tmp_path.rglob("escaped.txt"))
