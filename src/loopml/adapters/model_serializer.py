"""The `ModelSerializer` port over the flavors in `loopml.adapters.flavors`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import flavor_for, get_flavor
from loopml.ports import LoadedModel


class FlavorModelSerializer:
    """`model_types`: None to load what a registrant recorded (a workspace of one's own); a
    tuple of package prefixes (a team server) to load only classes of those packages."""

    def __init__(self, model_types: tuple[str, ...] | None = None) -> None:
        self.model_types = model_types

    def save(self, model: Any, directory: Path) -> tuple[str, dict[str, Any]]:
        flavor = flavor_for(model)
        return flavor.name, flavor.save(model, directory)

    def load(
        self, flavor: str, directory: Path, info: dict[str, Any], *, trust: bool
    ) -> LoadedModel:
        found = get_flavor(flavor)
        if self.model_types is not None:
            found.check_shared(info, self.model_types)
            trust = False
        return found.load(directory, info, trust_pickle=trust)
