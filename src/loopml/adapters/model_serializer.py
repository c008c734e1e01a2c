"""The `ModelSerializer` port over the flavors in `loopml.adapters.flavors`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import LoadedModel, flavor_for, get_flavor


class FlavorModelSerializer:
    def save(self, model: Any, directory: Path) -> tuple[str, dict[str, Any]]:
        flavor = flavor_for(model)
        return flavor.name, flavor.save(model, directory)

    def load(
        self, flavor: str, directory: Path, info: dict[str, Any], *, trust: bool
    ) -> LoadedModel:
        return get_flavor(flavor).load(directory, info, trust_pickle=trust)
