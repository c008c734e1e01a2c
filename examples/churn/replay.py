"""Replay a labelled CSV through a model server, as production traffic would arrive: the rows
go to `/predict` in requests of `--batch` rows, then each row's true label goes to `/feedback`
under the request id the server gave it. Prints one line: rows served, labels fed back and the
accuracy of the answers.

    python examples/churn/replay.py data/mar.csv --url http://127.0.0.1:8080 --rows 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import pandas as pd

LABEL = "churned"


def replay(
    table: Path, url: str, deployment: str | None, rows: int, batch: int
) -> dict[str, float]:
    frame = pd.read_csv(table).head(rows)
    inputs, labels = frame.drop(columns=[LABEL]), frame[LABEL].tolist()
    query = {"deployment": deployment} if deployment else {}
    ids: list[str] = []
    predictions: list[object] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(frame), batch):
            chunk = inputs.iloc[start : start + batch]
            answer = _post(client, "/predict", {"rows": chunk.to_dict("records")}, query)
            ids += answer["request_ids"]
            predictions += answer["predictions"]
        feedback = [{"request_id": i, "label": int(y)} for i, y in zip(ids, labels, strict=True)]
        _post(client, "/feedback", feedback, query)
    right = sum(int(p == y) for p, y in zip(predictions, labels, strict=True))
    return {"served": len(ids), "labelled": len(feedback), "accuracy": right / max(len(ids), 1)}


def _post(client: httpx.Client, path: str, body: object, query: dict[str, str]) -> dict:
    response = client.post(path, json=body, params=query)
    if response.status_code >= 400:
        sys.exit(f"{path} answered {response.status_code}: {response.text}")
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="CSV with the model's inputs and 'churned'.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="The model server.")
    parser.add_argument("--deployment", help="Which deployment, when the server has several.")
    parser.add_argument("--rows", type=int, default=1000, help="How many rows to send.")
    parser.add_argument("--batch", type=int, default=50, help="Rows per request.")
    options = parser.parse_args()
    done = replay(options.table, options.url, options.deployment, options.rows, options.batch)
    print(
        f"served {done['served']} rows, fed back {done['labelled']} labels, "
        f"accuracy {done['accuracy']:.3f}"
    )


if __name__ == "__main__":
    main()
