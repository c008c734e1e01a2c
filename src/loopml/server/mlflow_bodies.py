"""What MLflow's requests carry, checked: keys, params, tags, run ids and page sizes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from loopml.domain.filters import check_page
from loopml.domain.records import missing_run
from loopml.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_RESULTS = 50_000


class KeyValue(BaseModel):
    key: str
    value: str


def checked_run_id(run_id: str) -> str:
    """`run_id`, or the answer for a run that does not exist if it cannot be one."""
    if len(run_id) != 32 or any(ch not in "0123456789abcdef" for ch in run_id):
        raise missing_run(run_id[:40])
    return run_id


def checked_page_size(max_results: int) -> int:
    check_page(max_results, 0)
    if max_results > MAX_RESULTS:
        raise InvalidInput(
            f"max_results is {max_results}; at most {MAX_RESULTS}.",
            "Page through with next_page_token.",
        )
    return max_results


def checked_text(value: str, limit: int, what: str) -> str:
    if not value or len(value) > limit:
        raise InvalidInput(
            f"The {what} {value[:60]!r} is empty or longer than {limit} characters.",
            f"Use 1 to {limit} characters.",
        )
    return value


def checked_params(params: list[Any]) -> dict[str, str]:
    """Params by name, each name and value checked (a value may be empty, as in MLflow)."""
    checked = {}
    for p in params:
        value = p.value and checked_text(p.value, MAX_PARAM_VALUE, f"value of param {p.key!r}")
        checked[checked_text(p.key, MAX_KEY, "param name")] = value
    return checked


def checked_tags(tags: list[Any]) -> dict[str, str]:
    checked = {}
    for t in tags:
        if len(t.value) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"Tag {t.key[:60]!r} is {len(t.value)} characters long; at most {MAX_TAG_VALUE}.",
                "Log long text as an artifact.",
            )
        checked[checked_text(t.key, MAX_KEY, "tag name")] = t.value
    return checked
