"""report.html as a reader sees it: opened in headless Chromium (Debian's, ``make chromium``),
driven with Playwright's Python package (its own driver; no browser download).

The page must run without a console error, and show the summary, the front with every Pareto
member, and the table with every member's genome; clicking a header must sort the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.report import write_comparison, write_report
from tests.search.test_report import OTHERS, PARETO, RUN_3D, _random_run, _write_run

CHROMIUM = os.environ.get("PARETONAS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The figure's own data (plotly.py sends arrays base64-encoded; plotly.js decodes them into
# _fullData): how many front points are drawn, and the hover text of each.
FRONT_POINTS = """(id) => {
    const div = document.getElementById(id);
    const index = div.data.findIndex((t) => (t.name || "").includes("Pareto members"));
    if (index < 0) { return null; }
    return {drawn: Array.from(div._fullData[index].x).length, text: div.data[index].text};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _open(browser, path: Path):
    """The page once every figure is drawn, and the list its errors are collected into."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else 0)
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".every((div) => div.data && div._fullLayout)"
    )
    return page, errors


def test_report_opens_in_chromium_and_shows_summary_front_and_table(tmp_path: Path, browser):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    page, errors = _open(browser, write_report(run_dir))
    try:
        summary = page.locator("ul.tiers")
        assert summary.is_visible()
        text = summary.inner_text()
        assert "Configured budget" in text and "Tighter" in text and "Looser" in text
        assert "trial 3 (c32,mb3x48k5e6s1|p0w32a32)" in text
        genomes = page.locator("#pareto-table td.genome code").all_inner_texts()
        assert sorted(genomes) == sorted(row["genome"] for row in PARETO)
        assert page.locator("#pareto-table").is_visible()
        assert page.locator("#pareto-table .arch").count() == len(PARETO)
        for div in ("figure-1", "figure-2", "figure-3d"):
            front = page.evaluate(FRONT_POINTS, div)
            assert front["drawn"] == len(PARETO)
            for row in PARETO:  # the hover of each member shows its genome
                assert sum(f"genome: {row['genome']}" in t for t in front["text"]) == 1
            assert page.locator(f"#{div}").is_visible()
        # Sorting: test accuracy descending after two clicks on its header.
        header = page.locator("#pareto-table th", has_text="test acc")
        header.click()
        header.click()
        order = page.locator("#pareto-table tbody tr td:first-child").all_inner_texts()
        assert order == ["3", "2", "1"]
        assert errors == []
    finally:
        page.close()


def test_overlay_report_opens_in_chromium(tmp_path: Path, browser):
    first = _write_run(tmp_path / "a", PARETO + OTHERS, PARETO)
    second = _random_run(tmp_path / "b", 0, {**RUN_3D, "name": "digits-nsga2"})
    page, errors = _open(browser, write_comparison([first, second]))
    try:
        rows = page.locator("#compare-table tbody tr").all_inner_texts()
        assert len(rows) == 2 and "digits-mcu" in rows[0] and "digits-nsga2" in rows[1]
        traces = page.evaluate("document.getElementById('figure-1').data.map((t) => t.name || '')")
        assert any(name.startswith("digits-mcu: Pareto members") for name in traces)
        assert any(name.startswith("digits-nsga2: Pareto members") for name in traces)
        assert errors == []
    finally:
        page.close()
