"""Checks the xgboost and lightgbm flavor tests share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.adapters.flavors.boosted import BoostedModel
from loopml.errors import InvalidInput


def check_arrays_only_in_training_order(loaded: BoostedModel, frame: pd.DataFrame) -> None:
    """A server checks its signature's names against the model's once (`in_order`), then
    sends arrays; names in another order never let an array through by position."""
    names = list(frame.columns)
    ordered = loaded.in_order(names)
    assert ordered.ordered_arrays
    assert not loaded.ordered_arrays
    np.testing.assert_array_equal(ordered.predict(frame.to_numpy()), loaded.predict(frame))
    if loaded.has_predict_proba:
        both = ordered.predict_with_proba(frame.to_numpy())
        np.testing.assert_array_equal(both[1], loaded.predict_proba(frame))
    swapped = loaded.in_order(names[::-1])
    with pytest.raises(InvalidInput, match="reads its columns by name"):
        swapped.predict(frame[names[::-1]].to_numpy())
