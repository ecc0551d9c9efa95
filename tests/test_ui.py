"""The MLflow UI as a user sees it: the team's tracking server over a parallel sweep, driven in headless Chromium.

Needs Debian's `chromium` (`make browser` installs it) at `$CHROMIUM` or /usr/bin/chromium; Playwright drives that
binary (no `playwright install`). `UI_SCREENSHOT_DIR=DIR` also keeps the screenshot in DIR.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.conftest import TeamServer, TeamSweep

pytestmark = pytest.mark.slow

PAGE_TIMEOUT_MS = 60_000
COLUMNS = ("optimizer.lr", "epochs", "test_accuracy")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium binary; checked first, before the sweep and the server, so a missing browser fails fast."""
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"no Chromium at {path} (set $CHROMIUM, or run `make browser` to install Debian's chromium): "
            "the MLflow UI test needs a real browser"
        )
    return path


def column_index(page: Page, header: str) -> str:
    """The grid column (aria-colindex) whose header reads exactly `header`."""
    headers = page.locator(".ag-header-cell[role=columnheader]")
    cell = headers.filter(has_text=re.compile(rf"^\s*{re.escape(header)}\s*$"))
    expect(cell).to_have_count(1)
    return cell.get_attribute("aria-colindex")


def run_link(page: Page, run: Run) -> Locator:
    """The run's name as shown in the Run Name column: a link to the run's page."""
    return page.get_by_role("link", name=run.data.tags[MLFLOW_RUN_NAME], exact=True)


def row_cell(page: Page, run: Run, colindex: str) -> Locator:
    """The cell of `run`'s row in a column (the grid splits a row between its pinned and scrolling parts)."""
    row_id = run_link(page, run).locator("xpath=ancestor::*[@role='row'][1]").get_attribute("row-id")
    return page.locator(f'[role=row][row-id="{row_id}"] [role=gridcell][aria-colindex="{colindex}"]')


def add_columns(page: Page, names: tuple[str, ...]) -> None:
    """Columns > search > tick each name, as a user adds the columns to the runs table."""
    page.get_by_role("button", name="Columns", exact=True).click()
    selector = page.get_by_role("dialog")
    for name in names:
        selector.get_by_placeholder("Search columns").fill(name)  # also lists names that contain it: share_epochs
        entry = selector.locator(".du-bois-light-tree-title").filter(has_text=re.compile(rf"^{re.escape(name)}$"))
        expect(entry).to_have_count(1)
        entry.click()
    page.keyboard.press("Escape")
    expect(selector).to_be_hidden()


def save_screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UI_SCREENSHOT_DIR"):
        keep = Path(os.environ["UI_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / path.name)


def test_mlflow_ui_shows_the_sweep_runs_params_and_test_accuracy(
    chromium: str, team_server: TeamServer, team_sweep: TeamSweep, tmp_path: Path
):
    # The team's server (PostgreSQL behind `mlflow server`) over a sweep that two parallel jobs recorded into it.
    server, sweep = team_server.url, team_sweep
    grid = {(child.data.params["optimizer.lr"], child.data.params["epochs"]) for child in sweep.children}
    assert grid == set(itertools.product(["0.001", "0.0001"], ["1", "2"])), "the page is checked against the grid"
    assert all("test_accuracy" in child.data.metrics for child in sweep.children)
    screenshot = tmp_path / "mlflow_ui_runs.png"
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 900})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            try:
                page.goto(f"{server}/#/experiments/{sweep.experiment_id}/runs")
                expect(page.get_by_text("Training runs", exact=True)).to_be_visible()
                parent = run_link(page, sweep.parent)
                expect(parent).to_be_visible()
                assert sweep.parent.info.run_id in parent.get_attribute("href")

                # The assistant panel opens beside the table; a user closes it to make room.
                assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
                if assistant.is_visible():
                    assistant.click()
                # The jobs are nested under the sweep's run, collapsed: expand it with its "+".
                first_child = run_link(page, sweep.children[0])
                if not first_child.is_visible():
                    parent.locator("xpath=ancestor::*[@role='gridcell'][1]").get_by_role("button").click()
                for child in sweep.children:
                    expect(run_link(page, child)).to_be_visible()
                    assert child.info.run_id in run_link(page, child).get_attribute("href")

                add_columns(page, COLUMNS)
                lr, epochs, accuracy = (column_index(page, name) for name in COLUMNS)
                for child in sweep.children:
                    expect(row_cell(page, child, lr)).to_have_text(child.data.params["optimizer.lr"])
                    expect(row_cell(page, child, epochs)).to_have_text(child.data.params["epochs"])
                    expect(row_cell(page, child, accuracy)).to_have_text(re.compile(r"^\d+(\.\d+)?(e-?\d+)?$"))
                    shown = float(row_cell(page, child, accuracy).inner_text())  # the UI may round long decimals
                    assert math.isclose(shown, child.data.metrics["test_accuracy"], rel_tol=1e-3), (child.info, shown)
                expect(row_cell(page, sweep.parent, lr)).to_have_text("-")  # the sweep's run has no job params
            finally:
                save_screenshot(page, screenshot)
        finally:
            browser.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
