"""The `ModelSerializer` port over the flavors in `loopml.adapters.flavors`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import LoadedModel, flavor_for, get_flavor
from loopml.adapters.flavors.sklearn import check_recorded_types
from loopml.errors import Forbidden


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
        if self.model_types is not None:
            if flavor != "sklearn":
                raise Forbidden(
                    f"This process loads only models of the sklearn flavor, not {flavor!r}.",
                    "Load it where you trust who registered it (`loopml serve --trust`).",
                )
            check_recorded_types(info, self.model_types)
            trust = False
        return get_flavor(flavor).load(directory, info, trust_pickle=trust)
