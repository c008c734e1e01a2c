"""References users type: `churn@2`, `churn@latest`, `churn@champion`, `churn/3`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$")


def check_name(name: str, what: str) -> str:
    """`name` if it is a valid dataset/model/project name, else InvalidInput."""
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"{what.capitalize()} name {name!r} is not allowed.",
            "Use letters, digits, '_', '-' and '.', starting with a letter or digit "
            "(at most 200 characters).",
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS_RE.match(alias) or alias == "latest":
        raise InvalidInput(
            f"Alias {alias!r} is not allowed.",
            "Use a word such as champion or challenger: a letter, then letters, digits, '_' "
            "or '-' ('latest' is reserved).",
        )
    return alias


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int | None
    """None means the latest version."""


def parse_dataset_ref(text: str) -> DatasetRef:
    """`name`, `name@latest` or `name@N`."""
    name, _, version = text.partition("@")
    check_name(name, "dataset")
    if version in ("", "latest"):
        return DatasetRef(name, None)
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"Dataset reference {text!r} has version {version!r}, which is not a number.",
            f"Write {name}@1, {name}@2, ... or {name}@latest.",
        )
    return DatasetRef(name, int(version))


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None
    """With neither version nor alias, the latest version."""


def parse_model_ref(text: str) -> ModelRef:
    """`name` (latest), `name/N`, `name@alias` or `name@latest`."""
    if "/" in text:
        name, _, version = text.partition("/")
        check_name(name, "model")
        if not version.isdigit() or int(version) < 1:
            raise InvalidInput(
                f"Model reference {text!r} has version {version!r}, which is not a number.",
                f"Write {name}/3 for a version or {name}@champion for an alias.",
            )
        return ModelRef(name, version=int(version))
    name, _, alias = text.partition("@")
    check_name(name, "model")
    if alias in ("", "latest"):
        return ModelRef(name)
    return ModelRef(name, alias=check_alias(alias))
