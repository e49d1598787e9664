"""What a data-quality reviewer sees in the Dagster UI after the demo, in a real browser.

Debian's Chromium, driven by Playwright, opens the pages a reviewer opens on the demo's data
(`tests/browser/demo_ui.py`): the lineage graph, one dataset's partitions, `broadlog_xdm`'s
checks, `data_quality_report` and `profiles_xdm`'s preview. Each test asserts what the page
must show (check names and outcomes, row counts that match the demo's summary, masked values)
and that no raw personal value of the input files is in the page's text, the Markdown and JSON
dialogs it opens included. Every page is saved as a PNG in the screenshot folder
(tests/browser/conftest.py).

Locators wait for the UI by themselves (Playwright's auto-waiting); nothing sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from rtcdp_assets.shared.masking import MASK
from tests.browser.demo_ui import DemoUi
from tests.browser.personal_values import PersonalValueFinder, describe_leaks

pytestmark = pytest.mark.integration

# A masked personal value as the UI shows it (rtcdp_assets/shared/masking.py).
MASKED = MASK
LOADING = re.compile(r"^Loading")
GROUPS = (
    "campaign_to_aep",
    "aep_to_campaign",
    "customer_to_campaign",
    "mobile_push",
    "operations",
    "data_quality",
)
XDM_CHECKS = (
    "events_per_profile",
    "id_unique",
    "identity_count",
    "no_future_timestamp",
    "record_size",
    "xdm_conformance",
)


class ReviewerPages:
    """One test's visit: screenshots in order, and the text of every page and dialog seen."""

    def __init__(self, page: Page, screenshot_dir: Path, test_name: str) -> None:
        self.page = page
        self.screenshot_dir = screenshot_dir
        self.test_name = test_name
        self.texts: dict[str, str] = {}

    def record(self, view: str) -> None:
        """Screenshot and text of what is on the screen now, dialogs included, once every
        part of the page has loaded (the graph's nodes load their details one by one)."""
        expect(self.page.get_by_text(LOADING)).to_have_count(0)
        name = f"{self.test_name}-{len(self.texts) + 1:02d}-{view}"
        self.page.screenshot(path=str(self.screenshot_dir / f"{name}.png"))
        self.texts[view] = self.page.locator("body").inner_text()

    def assert_no_personal_value(self, personal: PersonalValueFinder) -> None:
        assert self.texts, "no page was recorded"
        leaks = {view: found for view, text in self.texts.items() if (found := personal.find(text))}
        assert not leaks, "raw personal values of the input on the page:\n" + describe_leaks(leaks)


@pytest.fixture
def visit(page: Page, screenshot_dir: Path, request: pytest.FixtureRequest) -> ReviewerPages:
    return ReviewerPages(page, screenshot_dir, request.node.name.removeprefix("test_"))


def metadata_value(page: Page, key: str) -> Locator:
    """The value cell of a metadata entry (the UI's metadata table: key | value)."""
    row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
    return row.locator("td").nth(1)


def metadata_int(page: Page, key: str) -> int:
    cell = metadata_value(page, key)
    expect(cell).to_have_text(re.compile(r"^\s*\d+\s*$"))
    return int(cell.inner_text().strip())


def open_dialog(page: Page, key: str, label: str) -> Locator:
    """Click a metadata entry's `[Show Markdown]` / `[Show JSON]` and return the dialog."""
    metadata_value(page, key).get_by_text(label).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def close_dialog(page: Page) -> None:
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)


def report_row(dialog: Locator, asset: str, check: str) -> Locator:
    """The data-quality report's table row of one check."""
    page = dialog.page
    return (
        dialog.locator("tr")
        .filter(has=page.get_by_role("cell", name=asset, exact=True))
        .filter(has=page.get_by_role("cell", name=check, exact=True))
    )


def test_lineage_graph(page: Page, ui: DemoUi, visit: ReviewerPages, personal) -> None:
    page.goto(ui.url("/asset-groups"))
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS:
        expect(page.get_by_text(group, exact=True).last).to_be_visible()
    visit.record("global_lineage")

    # One dataset's flow: the typed rows, their XDM records (every check passed), the files
    # published for AEP.
    page.goto(ui.url("/assets/broadlog_xdm?view=lineage"))
    for asset in ("broadlog", "broadlog_xdm", "broadlog_published"):
        expect(page.get_by_text(asset, exact=True).last).to_be_visible()
    expect(page.get_by_text(re.compile(r"^(\d+) / \1 Passed$")).first).to_be_visible()
    visit.record("broadlog_lineage")
    visit.assert_no_personal_value(personal)


def test_broadlog_partitions(page: Page, ui: DemoUi, visit: ReviewerPages, personal) -> None:
    partitions = ui.partitions_of("broadlog")
    pk = ui.partition
    page.goto(ui.url(f"/assets/broadlog?view=partitions&partition={pk}"))
    expect(page.get_by_text(f"Materialized ({len(partitions)})", exact=True)).to_be_visible()
    expect(page.get_by_text(pk, exact=True).first).to_be_visible()
    # The rows the demo's summary printed, and rows in = rows kept + rows quarantined.
    expect(metadata_value(page, "dagster/row_count")).to_have_text(str(ui.rows[("broadlog", pk)]))
    rows_in = metadata_int(page, "rows_in")
    assert rows_in == ui.rows[("broadlog", pk)] + metadata_int(page, "rows_rejected")
    expect(metadata_value(page, "source_files")).to_contain_text("processed")
    visit.record("partition")

    preview = open_dialog(page, "preview", "[Show Markdown]")
    expect(preview.get_by_role("columnheader", name="address", exact=True)).to_be_visible()
    expect(preview).to_contain_text(MASKED)
    visit.record("preview")
    close_dialog(page)
    visit.assert_no_personal_value(personal)


def test_broadlog_xdm_checks(page: Page, ui: DemoUi, visit: ReviewerPages, personal) -> None:
    page.goto(ui.url("/assets/broadlog_xdm?view=checks"))
    expect(page.get_by_text(f"Checks ({len(XDM_CHECKS)})", exact=True)).to_be_visible()
    for check in XDM_CHECKS:
        # The list item: the check's name and the outcome of its latest execution.
        item = page.get_by_title(check, exact=True).first.locator("xpath=..")
        expect(item).to_contain_text("Succeeded")
    visit.record("checks")

    page.get_by_title("xdm_conformance", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"checkDetail=xdm_conformance"))
    expect(page.get_by_text("Every record validates against the official XDM")).to_be_visible()
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    # The latest execution is the latest window's (the demo runs the windows in order).
    expect(page.get_by_text(ui.partition, exact=True)).to_be_visible()
    expect(metadata_value(page, "records_checked")).to_have_text(
        str(ui.rows[("broadlog_xdm", ui.partition)])
    )
    expect(metadata_value(page, "records_invalid")).to_have_text("0")
    visit.record("xdm_conformance")

    open_dialog(page, "examples", "[Show JSON]")
    visit.record("xdm_conformance_examples")
    close_dialog(page)
    visit.assert_no_personal_value(personal)


def test_data_quality_report(page: Page, ui: DemoUi, visit: ReviewerPages, personal) -> None:
    pk = ui.partition
    page.goto(ui.url(f"/assets/data_quality_report?view=partitions&partition={pk}"))
    expect(page.get_by_text("Materialized (1)", exact=True)).to_be_visible()
    checks = metadata_int(page, "checks")
    failed = metadata_int(page, "checks_failed")
    expect(metadata_value(page, "html_report")).to_have_text(
        f"data_quality_report/{pk}/report.html"
    )
    visit.record("metadata")

    report = open_dialog(page, "report", "[Show Markdown]")
    expect(report).to_contain_text(f"Data quality, partition {pk}")
    for asset in ("broadlog_xdm", "tracking_log_xdm", "profiles_xdm"):
        row = report_row(report, asset, "xdm_conformance")
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(2)).to_have_text("passed")
    expect(report_row(report, "broadlog", "reconciliation").locator("td").nth(2)).to_have_text(
        "passed"
    )
    # One row per check, and the metadata's failure count is the table's.
    outcome_cells = report.locator("table").first.locator("tr > td:nth-child(3)")
    outcomes = [c.strip() for c in outcome_cells.all_inner_texts()]
    assert outcomes.count("passed") + outcomes.count("FAILED") + outcomes.count("not run") == checks
    assert outcomes.count("FAILED") == failed
    # The quarantined-row samples, masked.
    expect(report.get_by_text("broadlog: quarantined rows (sample)")).to_be_visible()
    expect(report.get_by_role("columnheader", name="values (masked)").first).to_be_visible()
    expect(report).to_contain_text(MASKED)
    visit.record("report")
    close_dialog(page)
    visit.assert_no_personal_value(personal)


def test_profiles_xdm_preview(page: Page, ui: DemoUi, visit: ReviewerPages, personal) -> None:
    pk = ui.partition
    page.goto(ui.url(f"/assets/profiles_xdm?view=partitions&partition={pk}"))
    expect(metadata_value(page, "dagster/row_count")).to_have_text(
        str(ui.rows[("profiles_xdm", pk)])
    )
    visit.record("partition")

    preview = open_dialog(page, "preview", "[Show Markdown]")
    expect(preview).to_contain_text(f'"personalEmail":{{"address":"{MASKED}"')
    visit.record("preview")
    close_dialog(page)
    visit.assert_no_personal_value(personal)
