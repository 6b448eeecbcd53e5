"""The HTML report in a real browser: Debian's chromium through Playwright, offline. Every chart
draws, nothing is fetched from the network, and script in the data stays inert text."""

from __future__ import annotations


import pytest

from browser import BROWSER_MARKS, launch_chromium
from click.testing import CliRunner

from reported import EVIL, LABELS, reported_project
from tuneloop.cli import cli

pytestmark = BROWSER_MARKS


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        tab = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        tab.requests = []  # type: ignore[attr-defined]
        tab.errors = []  # type: ignore[attr-defined]
        tab.on("request", lambda request: tab.requests.append(request.url))
        tab.on("console", lambda message: message.type == "error" and tab.errors.append(
            message.text))
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        yield tab
        browser.close()


def test_the_report_renders_its_charts_offline(tmp_path, page):
    project = reported_project(tmp_path)
    output = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(project["config"].config_path), "--output",
                                      str(output)])
    assert result.exit_code == 0, result.output
    page.goto(output.as_uri())
    page.wait_for_load_state("load")

    assert page.title() == "tuneloop report: toy"
    headings = page.locator("h2").all_inner_texts()
    assert headings[:4] == ["Cycles", "Metrics across cycles",
                            "Benchmarks against the base model", "Human metrics"]
    charts = page.locator("svg.chart")
    assert charts.count() == 11
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 200, index
    # lines were drawn: each chart across cycles has a path with points for both cycles
    assert page.locator("svg.chart path").count() >= 9
    assert page.locator("svg.chart circle").count() >= 18
    cells = page.locator("svg.heatmap rect.cell")
    assert cells.count() == len(LABELS) ** 2
    assert all(cells.nth(n).bounding_box()["width"] > 5 for n in range(cells.count()))
    assert page.locator("svg.chart rect.bar").count() >= 1  # the reliability diagram
    # hover text of a confusion cell names reference and prediction
    titles = page.locator("svg.heatmap rect.cell title").all_text_contents()
    assert any(title.startswith("billing → billing: ") for title in titles)

    # script from the data is text: never run, shown as written
    assert page.evaluate("window.__pwned") is None
    assert EVIL in page.locator("body").inner_text()
    assert page.errors == []
    # nothing but the file itself was requested
    assert page.requests == [output.as_uri()]
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
