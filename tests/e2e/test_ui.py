"""The web UI in a real browser (Debian's Chromium, headless, driven by Playwright): the demo's
story page by page, an admin's promote and roll back, a viewer who gets no buttons and whose
forged requests are refused, and pages that stay fast at 10,000 runs and 100,000 points.

Screenshots of every page land in `test-artifacts/ui/`. A JavaScript error on any page fails
the test that saw it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loopml.testing.team_server import free_port, wait_until_healthy

LOOPML = str(Path(sys.executable).parent / "loopml")
SHOTS = Path(__file__).parents[2] / "test-artifacts" / "ui"


def _env(**values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return {**clean, **values}


@contextmanager
def _serving(args: list[str], folder: Path, env: dict[str, str]) -> Iterator[str]:
    """`loopml ARGS --port P` in `folder` until the block ends; yields its base URL."""
    port = free_port()
    log = (folder / f"ui-{port}.log").open("wb")
    process = subprocess.Popen(
        [LOOPML, *args, "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, folder / f"ui-{port}.log")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium(chromium_path: str) -> None:
    """Skip (or fail, when services are required) before the slow fixtures run."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short `loopml demo`: data, runs, two model versions, a deployment, a drift monitor
    that fired, a retraining that promoted version 2."""
    root = tmp_path_factory.mktemp("ui")
    done = subprocess.run(
        [LOOPML, "demo", "--dir", "demo", "--periods", "5", "--rows", "1500"],
        cwd=root, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root / "demo"


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("dialog", lambda dialog: dialog.accept())  # the confirmations of promote, roll back
    yield tab
    context.close()
    assert not errors, errors


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_demo_story_page_by_page(demo: Path, page: Any) -> None:
    with _serving(["ui"], demo, _env()) as url:
        page.goto(f"{url}/")
        assert page.url.endswith("/ui/runs")
        assert page.get_by_role("heading", name="Runs").is_visible()
        rows = page.locator("tbody tr")
        assert rows.count() >= 3  # two pipeline runs and the loop's data run
        _shot(page, "runs")

        page.get_by_label("Filter").fill("metrics.accuracy > 0.5")
        page.get_by_role("button", name="Apply").click()
        assert "matching" in page.locator("caption").inner_text()
        page.get_by_label("Filter").fill("metrics.accuracy >>> 1")
        page.get_by_role("button", name="Apply").click()
        assert page.get_by_role("alert").is_visible()  # the parser's error, not a crash

        page.goto(f"{url}/ui/runs?project=default&filter=metrics.accuracy+%3E+0")
        page.locator("tbody tr a").first.click()
        assert page.get_by_role("heading", name="Metrics").is_visible()
        assert "accuracy" in page.locator("main table").nth(1).inner_text()
        _shot(page, "run")

        page.goto(f"{url}/ui/runs?project=default&filter=metrics.accuracy+%3E+0")
        boxes = page.locator("tbody input[type=checkbox]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.get_by_role("button", name="Compare ticked runs").click()
        assert page.get_by_role("heading", name="Compare 2 runs").is_visible()
        assert page.locator("svg.chart polyline").count() >= 2  # one curve per run
        _shot(page, "compare")

        _walk_data_models_and_audit(page)


def _walk_data_models_and_audit(page: Any) -> None:
    """Data -> a version's histograms -> a diff; models -> lineage graph; the audit trail."""
    page.get_by_role("link", name="Data").click()
    page.get_by_role("link", name="churn").first.click()
    page.get_by_role("link", name="1", exact=True).click()
    assert page.locator("svg.chart rect[height]").count() > 10  # histograms per column
    _shot(page, "dataset-version")
    page.go_back()
    page.get_by_role("button", name="Diff").click()  # a version against the newest
    assert page.get_by_role("heading", name=re.compile(r"churn: version \d+ → 3")).is_visible()
    changes = page.locator("tbody").last.inner_text()
    assert "No change" not in changes  # the loop's data added a period of new rows
    _shot(page, "dataset-diff")

    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="churn", exact=True).click()
    assert "champion" in page.locator("tbody").inner_text()
    page.get_by_role("link", name="2", exact=True).click()
    assert page.get_by_role("heading", name="Lineage").is_visible()
    graph = page.locator("svg.lineage")  # churn@1 -> loop data run -> churn@2 -> steps ...
    assert graph.locator("a[href*='/ui/data/churn/2']").count() == 1  # each node once
    assert graph.locator("a[href*='/ui/data/churn/1']").count() == 1
    assert graph.locator("a[href*='/ui/runs/']").count() >= 6  # pipeline, 5 steps, data run
    assert graph.locator("a[href*='/ui/deployments/churn-prod']").count() == 1
    assert graph.locator("path[marker-end]").count() >= 7
    _shot(page, "model-version")

    page.get_by_role("link", name="Audit").click()
    assert "verifies" in page.locator(".verdict-ok").inner_text()
    _shot(page, "audit")


def test_an_admin_promotes_and_rolls_back_and_both_are_audited(demo: Path, page: Any) -> None:
    with _serving(["ui"], demo, _env(LOOPML_ACTOR="ada")) as url:
        page.goto(f"{url}/ui/models/churn?project=default")
        page.get_by_role("button", name="Promote to champion").first.click()
        assert "is the champion" in page.get_by_role("status").inner_text()
        page.get_by_role("button", name="Roll back champion").click()
        assert "rolled back" in page.get_by_role("status").inner_text()
        _shot(page, "model")
        page.goto(f"{url}/ui/audit?project=default&entity=model:default/churn")
        text = page.locator("tbody").inner_text()
        assert "model.promoted" in text
        assert "model.rolled_back" in text
        assert "ada" in text


def test_a_viewer_sees_no_buttons_and_forged_changes_are_refused(demo: Path, page: Any) -> None:
    env = _env()
    subprocess.run([LOOPML, "users", "create", "vic"], cwd=demo, env=env, check=True)
    subprocess.run(
        [LOOPML, "projects", "grant", "default", "vic", "--role", "viewer"],
        cwd=demo, env=env, check=True,
    )  # fmt: skip
    token = subprocess.run(
        [LOOPML, "tokens", "create", "vic"], cwd=demo, env=env, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with _serving(["server", "--no-schedule"], demo, env) as url:
        page.goto(f"{url}/ui/models/churn?project=default")
        assert "/ui/login" in page.url  # no session: the login page
        page.get_by_label("API token").fill("lml_not-a-token")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("alert").is_visible()
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Log in").click()
        assert page.url.endswith("/ui/models/churn?project=default")
        assert page.get_by_role("button", name="Promote to champion").count() == 0
        assert page.get_by_role("button", name="Roll back champion").count() == 0
        _shot(page, "model-as-viewer")
        status = page.evaluate(
            """async () => (await fetch('/ui/models/churn/1/promote?project=default',
                                          {method: 'POST'})).status"""
        )
        assert status == 403
        page.goto(f"{url}/ui/audit?project=default&entity=model:default/churn")
        assert "vic" not in page.locator("tbody").inner_text()  # nothing was changed


def test_pages_work_at_ten_thousand_runs_and_a_hundred_thousand_points(
    tmp_path: Path, page: Any
) -> None:
    """The runs page among 10,000 runs and a run page whose curve has 100,000 points render;
    their load times as the browser measures them (navigation start to load end) are written
    to test-artifacts/ui/timings.json for the README."""
    from loopml.adapters.sql import tables as t
    from loopml.bootstrap import open_workspace
    from loopml.domain.records import MetricPoint
    from loopml.settings import Settings

    ws = open_workspace(Settings.from_env(env={}, cwd=tmp_path))
    try:
        with ws.tracking.start_run(project="default", name="long") as run:
            points = [  # a decaying, noisy loss
                MetricPoint("loss", 1 / (1 + i / 5000) + (i * 7919 % 100) / 2000, i, 0)
                for i in range(100_000)
            ]
            ws.tracking.store.log_batch(run.id, points)
        ids = [f"{i:032x}" for i in range(10_000)]  # 10,000 more, straight into the tables
        with ws.db.write() as conn:
            conn.execute(
                t.runs.insert(),
                [
                    {
                        "id": r,
                        "project": "default",
                        "name": f"r{i}",
                        "status": "finished",
                        "start_us": i,
                        "end_us": i + 1,
                        "environment": {},
                    }
                    for i, r in enumerate(ids)
                ],
            )
            conn.execute(
                t.params.insert(),
                [
                    {"run_id": r, "key": "i", "value": str(i), "value_num": float(i)}
                    for i, r in enumerate(ids)
                ],
            )
            conn.execute(
                t.latest_metrics.insert(),
                [
                    {"run_id": r, "key": "acc", "step": 0, "timestamp_ms": 0, "value": i / 1e4}
                    for i, r in enumerate(ids)
                ],
            )
    finally:
        ws.close()
    with _serving(["ui"], tmp_path, _env()) as url:
        took = {}
        for name, path in (
            ("runs", "/ui/runs?project=default&order=-metrics.acc"),
            ("run", f"/ui/runs/{run.id}"),
        ):
            page.goto(f"{url}/ui/runs?project=default")  # warm: the first page loads Jinja2
            page.goto(f"{url}{path}")
            took[name] = page.evaluate(
                "() => { const t = performance.getEntriesByType('navigation')[0];"
                " return t.loadEventEnd - t.startTime; }"
            )
        assert page.locator("svg.chart polyline").count() == 1
        _shot(page, "run-100k-points")
        page.goto(f"{url}/ui/runs?project=default")
        assert "10001 top-level runs" in page.locator("caption").inner_text()
    (SHOTS / "timings.json").write_text(json.dumps({f"{k}_ms": round(v) for k, v in took.items()}))
    # The figures are for the README (written above), not a timed test: CI shares two cores
    # with other suites. Only a page that hangs fails here.
    assert max(took.values()) < 30_000, took


def test_production_pages_tell_the_rest_of_the_story(demo: Path, page: Any) -> None:
    """Deployment traffic and one prediction's record; the monitor's drift and performance over
    windows with each feature's reference against current; the alerts' lifecycle; the loop's
    scores and decision."""
    with _serving(["ui"], demo, _env()) as url:
        page.goto(f"{url}/ui/deployments?project=default")
        page.get_by_role("link", name="churn-prod").click()
        assert page.get_by_role("heading", name="Deployment churn-prod").is_visible()
        titles = page.locator("figcaption").all_inner_texts()
        assert "Requests per minute" in titles
        assert "Latency (ms)" in titles
        assert "Model version serving" in titles
        assert "Error rate and availability (churn-health)" in titles  # the demo's probes
        _shot(page, "deployment")
        page.locator("tbody tr a").first.click()
        assert page.get_by_role("heading", name="Inputs").is_visible()
        record = page.locator("main table").first.inner_text()
        assert "churn/2" in record  # the newest rows were served by the promoted version
        assert "ms" in record
        _shot(page, "prediction")

        page.get_by_role("link", name="Monitors").click()
        page.get_by_role("link", name="churn-drift").click()
        captions = page.locator("figcaption").all_inner_texts()
        assert "Share of drifted columns" in captions
        assert "Performance on labelled rows" in captions
        assert page.locator("section h2", has_text="drifted").count() >= 1
        assert page.locator("section svg.chart").count() >= 4  # reference against current
        _shot(page, "monitor")

        page.get_by_role("link", name="Alerts").click()
        states = page.locator("tbody").first.inner_text()
        assert "resolved" in states
        assert "webhook" in states  # where each notice went
        _shot(page, "alerts")

        page.get_by_role("link", name="Loops").click()
        text = page.locator("main").inner_text()
        assert "promoted" in text
        assert "champion" in text
        assert "accuracy" in text
        _shot(page, "loops")


def test_from_a_run_to_its_model_its_deployment_and_one_prediction_explained(
    demo: Path, page: Any
) -> None:
    with _serving(["ui"], demo, _env()) as url:
        page.goto(f"{url}/ui/runs?project=default")
        # the training that made the champion: the loop's first (its second waits, undecided)
        page.get_by_role("link", name="churn", exact=True).nth(1).click()
        page.get_by_role("link", name="churn/2").click()
        assert page.get_by_role("heading", name="Model churn/2").is_visible()
        page.get_by_role("link", name="deployment churn-prod").click()  # its box in the graph
        assert page.get_by_role("heading", name="Deployment churn-prod").is_visible()
        page.locator("tbody tr a").first.click()
        page.get_by_role("link", name="Explain this prediction").click()
        rows = page.locator("main table").last.locator("tbody tr")
        assert rows.count() == 4  # tenure, monthly, plan, note
        assert "against the training profile" in page.locator("main").inner_text()
        _shot(page, "prediction-explained")


_UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.textContent.trim())
    .map(el => el.outerHTML.slice(0, 80))"""


def test_every_page_has_one_heading_labelled_controls_and_a_keyboard_path(
    demo: Path, page: Any
) -> None:
    paths = [
        "/ui/runs?project=default", "/ui/data?project=default", "/ui/data/churn/1?project=default",
        "/ui/models/churn?project=default", "/ui/models/churn/2?project=default",
        "/ui/deployments/churn-prod?project=default", "/ui/monitors/churn-drift?project=default",
        "/ui/alerts?project=default", "/ui/loops?project=default", "/ui/audit?project=default",
    ]  # fmt: skip
    with _serving(["ui"], demo, _env()) as url:
        for path in paths:
            page.goto(f"{url}{path}")
            assert page.locator("h1").count() == 1, path
            assert page.evaluate(_UNLABELLED) == [], path
            charts = page.locator("svg[role=img]")
            for i in range(charts.count()):
                assert charts.nth(i).get_attribute("aria-label"), path
            page.keyboard.press("Tab")  # the first stop skips the menu
            assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
