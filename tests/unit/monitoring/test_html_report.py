"""The HTML drift report draws its charts with `loopml.monitoring.charts`, as the web UI does:
each feature's chart is the UI's chart of that feature (without a legend of its own: the page
has one), and the history is a line of the drift share over windows."""

from __future__ import annotations

import pandas as pd
from synthetic import table

from loopml import monitoring
from loopml.monitoring.charts import drift_chart
from loopml.monitoring.html import render


def test_each_feature_is_drawn_as_the_web_ui_draws_it() -> None:
    reference = table(2_000, seed=1, columns=["num_00", "cat_1"])
    current = table(2_000, seed=2, columns=["num_00", "cat_1"], shift_std={"num_00": 0.5})
    document = monitoring.compare(reference, current).to_dict()
    page = render(document)
    for feature in document["features"]:
        name = feature["name"]
        drawn = drift_chart(f"{name}: reference and current", feature["chart"], x_label=name)
        assert drawn.split("</svg>")[0] in page  # the same chart, less its own legend
    assert page.count('<svg class="chart"') == page.count("<svg") == 2
    assert "<title>num_00: reference and current</title>" in page  # named for screen readers
    assert '<ul class="legend">' not in page
    assert "■ reference" in page


def test_the_history_is_a_line_of_the_drift_share_over_windows() -> None:
    frame = pd.DataFrame({"x": range(100)})
    document = monitoring.compare(frame, frame).to_dict()
    history = [
        {"time": "2024-05-01 10:00", "drift_share": 0.0},
        {"time": "2024-05-01 11:00", "drift_share": 0.5},
        {"time": "2024-05-01 12:00", "drift_share": 1.0},
    ]
    page = render(document, history)
    chart = page.split("<h2>Drift share over windows</h2>")[1]
    assert chart.startswith("<div class='history'><svg class=\"chart\"")
    assert "window (2024-05-01 10:00 to 2024-05-01 12:00)" in chart
    assert chart.count("<circle") == 3  # one mark per window
