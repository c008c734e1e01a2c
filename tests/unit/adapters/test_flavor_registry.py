"""A flavor is one class that declares what it takes, how it saves and loads, whether it stores
step values and whether a shared server may load it: added to `FLAVORS`, it is chosen at
registration, stores and reloads step values byte for byte, and is asked before a team server
loads a version, with nothing else changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.adapters.flavors import base
from loopml.adapters.flavors.base import (
    FlavorModel,
    flavor_for,
    get_flavor,
    prepare_empty_directory,
)
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.step_values import TypedValueSerializer
from loopml.errors import Forbidden, IntegrityError

MODEL_FILE = "weights.json"


class Linear:
    """A linear model small enough to store as JSON."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def predict(self, frame: Any) -> Any:
        return np.asarray(frame, dtype=float) @ np.asarray(self.weights)


class LinearFlavor:
    name = "linear-json"
    files = (MODEL_FILE,)
    step_values = True

    def accepts(self, model: object) -> bool:
        return isinstance(model, Linear)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        prepare_empty_directory(directory)
        (directory / MODEL_FILE).write_text(json.dumps(model.weights))
        return {"flavor": self.name, "inputs": len(model.weights)}

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> FlavorModel:
        weights = json.loads((directory / MODEL_FILE).read_text())
        return FlavorModel(raw=Linear(weights), flavor=self.name)

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        return None  # JSON numbers build nothing a server must fear


@pytest.fixture
def with_linear(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(base, "FLAVORS", ((__name__, "LinearFlavor"), *base.FLAVORS))
    base.flavors.cache_clear()
    yield
    base.flavors.cache_clear()


@pytest.mark.usefixtures("with_linear")
def test_a_flavor_in_the_list_is_chosen_at_registration_and_loads_back(tmp_path: Path) -> None:
    model = Linear([1.0, -2.0])
    assert flavor_for(model).name == "linear-json"
    name, info = FlavorModelSerializer().save(model, tmp_path / "m")
    assert name == "linear-json"
    loaded = FlavorModelSerializer().load(name, tmp_path / "m", info, trust=False)
    assert loaded.predict([[3.0, 1.0]]).tolist() == [1.0]


@pytest.mark.usefixtures("with_linear")
def test_a_shared_server_asks_the_flavor_whether_it_may_load_a_version(tmp_path: Path) -> None:
    shared = FlavorModelSerializer(model_types=("sklearn.",))
    name, info = shared.save(Linear([2.0]), tmp_path / "linear")
    assert shared.load(name, tmp_path / "linear", info, trust=True).predict([[1.5]]).tolist() == [
        3.0
    ]
    python = get_flavor("python")
    with pytest.raises(Forbidden, match="whose flavor loads no code"):
        python.check_shared({}, ("sklearn.",))


@pytest.mark.usefixtures("with_linear")
def test_a_flavor_that_stores_step_values_writes_the_same_bytes_and_reads_them(
    tmp_path: Path,
) -> None:
    values = TypedValueSerializer()
    first, second = tmp_path / "a", tmp_path / "b"
    assert values.dump(Linear([0.5, 0.25]), first)[0] == "linear-json"
    values.dump(Linear([0.5, 0.25]), second)
    assert {p.name: p.read_bytes() for p in first.iterdir()} == {
        p.name: p.read_bytes() for p in second.iterdir()
    }
    assert values.load("linear-json", first).weights == [0.5, 0.25]
    assert values.may_hold_model("linear-json")
    assert not values.may_hold_model("json")

    (second / MODEL_FILE).unlink()
    with pytest.raises(IntegrityError, match=MODEL_FILE):
        values.load("linear-json", second)


def test_without_it_the_same_model_falls_to_the_python_flavor() -> None:
    assert flavor_for(Linear([1.0])).name == "python"
    assert not TypedValueSerializer().may_hold_model("linear-json")
    assert TypedValueSerializer().may_hold_model("pickle")
    assert TypedValueSerializer().may_hold_model("sklearn")
