"""How sure a verdict must be, and over how many rows: the checks of a policy's settings,
apart from the statistics that use them (so a spec is checked without importing numpy)."""

from __future__ import annotations

from loopml.errors import InvalidInput


def check_confidence(confidence: float) -> None:
    """InvalidInput unless 0.5 < confidence < 1: how sure a rule's verdict must be (at 0.5 or
    below a verdict would be no surer than a coin flip)."""
    if not 0.5 < confidence < 1.0:
        raise InvalidInput(
            f"The confidence {confidence:g} is not between 0.5 and 1 (exclusive).",
            "Say how sure a verdict must be as a fraction, e.g. --confidence 0.9 for 90%.",
        )


def check_horizon(horizon: int | None) -> None:
    """InvalidInput unless the horizon is None or a positive number of rows."""
    if horizon is not None and horizon < 1:
        raise InvalidInput(
            f"The horizon {horizon} is not a positive number of rows.",
            "Say over how many served rows a rule must hold, e.g. --horizon 1000.",
        )
