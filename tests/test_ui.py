"""The MLflow UI as a user sees it: the team's tracking server over a parallel sweep, driven in headless Chromium.

Needs Debian's `chromium` (`make browser` installs it) at `$CHROMIUM` or /usr/bin/chromium; Playwright drives that
binary (no `playwright install`). `UI_SCREENSHOT_DIR=DIR` also keeps the screenshots in DIR.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import statistics
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from playwright.sync_api import Locator, Page, expect, sync_playwright

from alexnet_sweep import names
from alexnet_sweep.report.publish import ARTIFACT_DIR, TABLE_FILE
from tests.conftest import TeamServer, TeamSweep

pytestmark = pytest.mark.slow

PAGE_TIMEOUT_MS = 60_000
COLUMNS = ("optimizer.lr", "seed", "test_accuracy")
SHOTS = ("mlflow_ui_runs.png", "mlflow_ui_grouped.png", "mlflow_ui_grouped_charts.png", "mlflow_ui_configurations.png")
VAL_MEAN = f"{names.VAL_ACCURACY}_mean"  # a column of the report's per-configuration table


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


def cell_beside(page: Page, anchor: Locator, colindex: str) -> Locator:
    """The cell in a column of the row that holds `anchor` (the grid splits a row between its pinned and scrolling
    parts, so the cell is found by the row's id)."""
    row_id = anchor.locator("xpath=ancestor::*[@role='row'][1]").get_attribute("row-id")
    return page.locator(f'[role=row][row-id="{row_id}"] [role=gridcell][aria-colindex="{colindex}"]')


def row_cell(page: Page, run: Run, colindex: str) -> Locator:
    """The cell of `run`'s row in a column."""
    return cell_beside(page, run_link(page, run), colindex)


def group_label(page: Page, value: str) -> Locator:
    """The name of a group's row in the Run Name column: `Group: <tag value>`."""
    return page.get_by_text(f"Group: {value}", exact=True)


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


def group_by_tag(page: Page, tag: str) -> None:
    """Group by > search > tick the tag, as a user groups the runs table; checks the aggregate is the average."""
    page.get_by_role("button", name="Group by", exact=True).click()
    menu = page.get_by_role("menu")
    menu.get_by_placeholder("Search").fill(tag)  # also lists tags that contain it: best.configuration
    # The gear beside the search box picks how a group's values aggregate: Minimum, Maximum or Average.
    menu.get_by_role("button", name="Change aggregation function").click()
    expect(page.get_by_role("menuitemradio", name="Average", exact=True)).to_be_checked()
    page.keyboard.press("Escape")  # closes the gear's submenu only
    expect(page.get_by_role("menuitemradio")).to_have_count(0)
    entry = menu.get_by_role("menuitemcheckbox", name=tag, exact=True)
    expect(entry).to_have_count(1)
    entry.click()
    expect(menu).to_be_hidden()  # picking a tag closes the menu
    expect(page.get_by_role("button", name=f"Group by: {tag}", exact=True)).to_be_visible()


def table_column(table: Locator, header: str) -> int:
    """The position of the column whose header reads exactly `header` in an artifact's table view."""
    headers = table.get_by_role("columnheader")
    expect(headers.filter(has_text=re.compile(rf"^\s*{re.escape(header)}\s*$"))).to_have_count(1)
    return [text.strip() for text in headers.all_inner_texts()].index(header)


def save_screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UI_SCREENSHOT_DIR"):
        keep = Path(os.environ["UI_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / path.name)


def test_mlflow_ui_shows_the_sweep_runs_and_groups_replicates_by_configuration(
    chromium: str, team_server: TeamServer, team_sweep: TeamSweep, tmp_path: Path
):
    # The team's server (PostgreSQL behind `mlflow server`) over a sweep that two parallel jobs recorded into it:
    # two learning rates, two seeds each.
    server, sweep = team_server.url, team_sweep
    grid = {(child.data.params["optimizer.lr"], child.data.params["seed"]) for child in sweep.children}
    assert grid == set(itertools.product(["0.001", "0.0001"], ["0", "1"])), "the page is checked against the grid"
    assert all("test_accuracy" in child.data.metrics for child in sweep.children)
    replicates: dict[str, list[Run]] = {}
    for child in sweep.children:
        replicates.setdefault(child.data.tags[names.TAG_CONFIGURATION], []).append(child)
    assert sorted(len(runs) for runs in replicates.values()) == [2, 2], replicates.keys()  # one tag per lr
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
                lr, seed, accuracy = (column_index(page, name) for name in COLUMNS)
                for child in sweep.children:
                    expect(row_cell(page, child, lr)).to_have_text(child.data.params["optimizer.lr"])
                    expect(row_cell(page, child, seed)).to_have_text(child.data.params["seed"])
                    expect(row_cell(page, child, accuracy)).to_have_text(re.compile(r"^\d+(\.\d+)?(e-?\d+)?$"))
                    shown = float(row_cell(page, child, accuracy).inner_text())  # the UI may round long decimals
                    assert math.isclose(shown, child.data.metrics["test_accuracy"], rel_tol=1e-3), (child.info, shown)
                expect(row_cell(page, sweep.parent, lr)).to_have_text("-")  # the sweep's run has no job params
                save_screenshot(page, tmp_path / SHOTS[0])

                # Replicates: "Group by" the tag `configuration` shows one row per configuration with its number of
                # runs and each column's average over them; the sweep's run, untagged, goes to "Additional runs".
                group_by_tag(page, names.TAG_CONFIGURATION)
                expect(page.get_by_text(re.compile(r"^Group: "))).to_have_count(len(replicates))
                for value, runs in replicates.items():
                    label = group_label(page, value)
                    expect(label).to_be_visible()
                    expect(label.locator("xpath=..").get_by_role("status")).to_have_text(str(len(runs)))  # run count
                    for run in runs:
                        expect(run_link(page, run)).to_be_visible()
                    mean = statistics.fmean(run.data.metrics["test_accuracy"] for run in runs)
                    cell = cell_beside(page, label, accuracy)
                    expect(cell).to_have_text(re.compile(r"^\d+(\.\d+)?(e-?\d+)? \(average\)$"))
                    shown = float(cell.inner_text().removesuffix(" (average)"))
                    assert math.isclose(shown, mean, rel_tol=1e-3), (value, shown, mean)
                    expect(cell_beside(page, label, lr)).to_have_text(runs[0].data.params["optimizer.lr"])
                untagged = page.get_by_text(re.compile(r"^Additional runs"))
                expect(untagged.get_by_role("status")).to_have_text("1")  # the sweep's run
                save_screenshot(page, tmp_path / SHOTS[1])

                # The charts view keeps the grouping: a line per configuration in the epoch metrics' charts.
                charts = page.locator("input[name=runs-view-mode][value=CHART]")  # the toolbar's chart icon
                charts.locator("xpath=ancestor::label[1]").click()
                expect(charts).to_be_checked()
                for value in replicates:
                    expect(page.get_by_text(f"{value} ({names.ACCURACY})", exact=True)).to_be_visible()
                save_screenshot(page, tmp_path / SHOTS[2])

                # The sweep's run page, Artifacts tab: the report's per-configuration table (logged with
                # `log_table`) shows as a table, "View as table" ticked, not as JSON text: one row per configuration,
                # labelled as its runs' tag without the config hash, with its finished seeds and mean val_accuracy.
                artifact = f"{ARTIFACT_DIR}/{TABLE_FILE}"
                page.goto(
                    f"{server}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent.info.run_id}/artifacts/{artifact}"
                )
                expect(page.get_by_role("checkbox", name="View as table", exact=True)).to_be_checked()
                table = page.get_by_role("table")
                n, val_mean = table_column(table, "n"), table_column(table, VAL_MEAN)
                lr_column = table_column(table, "lr")  # `optimizer.lr` would show empty: the UI reads dots as paths
                expect(table.get_by_role("row").filter(has=page.get_by_role("cell"))).to_have_count(len(replicates))
                for value, runs in replicates.items():
                    label = re.fullmatch(r"(.+) \([0-9a-f]{8}\)", value).group(1)  # `lr=1e-3 (3fa2c1d0)`
                    configuration = page.get_by_role("cell").filter(has_text=re.compile(rf"^{re.escape(label)}$"))
                    row = table.get_by_role("row").filter(has=configuration)
                    expect(row).to_have_count(1)
                    cells = row.get_by_role("cell")
                    expect(cells.nth(n)).to_have_text(str(len(runs)))
                    expect(cells.nth(lr_column)).to_have_text(runs[0].data.params["optimizer.lr"])
                    expect(cells.nth(val_mean)).to_have_text(re.compile(r"^\d+(\.\d+)?(e-?\d+)?$"))
                    mean = statistics.fmean(run.data.metrics[names.VAL_ACCURACY] for run in runs)
                    assert math.isclose(float(cells.nth(val_mean).inner_text()), mean, rel_tol=1e-6), (value, mean)
                save_screenshot(page, tmp_path / SHOTS[3])
            except BaseException:
                save_screenshot(page, tmp_path / "mlflow_ui_failed.png")
                raise
        finally:
            browser.close()
    for name in SHOTS:
        shot = tmp_path / name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, name
