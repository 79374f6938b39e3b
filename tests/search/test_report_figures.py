"""The report's accuracy figures as a decision maker reads them, on screen and on paper: each
budget's pick marked and labelled, the teacher's accuracy as a line, "stopped early" in words,
an outlier cut off with the caption saying so, and a page that prints."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.report import write_report
from search.report.picks import Pick
from search.summary import SUMMARY
from tests.search.test_report import OTHERS, PARETO, RUN, TEACHER_ACCURACY, _trial, _write_run
from tests.search.test_report_browser import _open, browser  # noqa: F401 (a fixture)

PICKS = "recommended for a budget"
SPLITS = "The figures plot validation accuracy, which the search chose by"


def _figures(page: str) -> dict[str, tuple[list[dict], dict]]:
    """Each figure's (data, layout) as the page hands them to ``Plotly.newPlot``."""
    decoder = json.JSONDecoder()
    figures = {}
    for chunk in page.split("Plotly.newPlot(")[1:]:
        div, rest = chunk.split(",", 1)
        data, end = decoder.raw_decode(rest.lstrip())
        rest = rest.lstrip()[end:].lstrip().removeprefix(",").lstrip()
        layout, _ = decoder.raw_decode(rest)
        figures[json.loads(div.strip())] = (data, layout)
    return figures


def _values(array) -> list:
    """A trace's array: plotly.py writes numeric ones base64-encoded ({dtype, bdata})."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _trace(figure: tuple[list[dict], dict], name: str) -> dict:
    [trace] = [t for t in figure[0] if t.get("name", "").startswith(name)]
    return trace


def _caption(page: str, heading: str) -> str:
    return page.split(f"<h2>{heading}</h2>")[1].split('<p class="caption">')[1].split("</p>")[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Two more over-budget trials far out on both costs: the views stop short of them.
    far = [
        _trial(8, "infeasible", "c64,mb4x96k5e6s1|p0w32a32", latency=40.0, memory=900),
        _trial(9, "infeasible", "c64,mb4x96k5e6s1|p0w32a32", latency=12.0, memory=1200),
    ]
    folder = tmp_path_factory.mktemp("figures") / "run"
    _write_run(folder, PARETO + OTHERS + far, PARETO)
    write_report(folder)
    return folder


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def figures(page: str) -> dict[str, tuple[list[dict], dict]]:
    return _figures(page)


def test_each_figure_marks_exactly_the_summarys_picks(run_dir: Path, figures):
    # Tighter (1.375 ms, 32 KB): trial 2; configured and looser: trial 3 (summary.json agrees).
    summary = json.loads((run_dir / SUMMARY).read_text())
    picked = [tier["trial"] for tier in summary["tiers"]]
    assert picked == [2, 3, 3]
    members = {row["number"]: row for row in PARETO}
    for div, y_column in (("figure-1", "latency_ms"), ("figure-2", "peak_memory_kb")):
        trace = _trace(figures[div], PICKS)
        assert trace["name"] == PICKS and trace["marker"]["symbol"] == "diamond-open"
        assert _values(trace["x"]) == [members[n][y_column] for n in (2, 3)]
        assert _values(trace["y"]) == [members[n]["accuracy"] for n in (2, 3)]
        assert "<b>trial 2</b>" in trace["text"][0] and "<b>trial 3</b>" in trace["text"][1]
        labels = [a["text"] for a in figures[div][1]["annotations"] if a.get("name") == PICKS]
        assert labels == ["tighter: trial 2", "configured, looser: trial 3"]
    trace = _trace(figures["figure-3d"], PICKS)
    assert _values(trace["x"]) == [members[n]["latency_ms"] for n in (2, 3)]
    assert _values(trace["y"]) == [members[n]["peak_memory_kb"] for n in (2, 3)]
    assert _values(trace["z"]) == [members[n]["accuracy"] for n in (2, 3)]
    labels = [a["text"] for a in figures["figure-3d"][1]["scene"]["annotations"]]
    assert labels == ["tighter: trial 2", "configured, looser: trial 3"]


def test_the_knee_keeps_its_star_beside_the_picks(figures):
    for div in ("figure-1", "figure-2"):
        assert _trace(figures[div], "knee point")["marker"]["symbol"] == "star"


def test_a_pick_names_its_tiers_in_few_words():
    assert Pick(0, 19.0, ("configured budget",)).text == "configured budget: trial 19"
    both = Pick(0, 19.0, ("configured budget", "looser (bounds \u00d72)"))
    assert both.text == "configured, looser: trial 19"
    assert Pick(0, 3.0, ("phone",)).text == "phone: trial 3"


def test_a_tier_no_member_meets_marks_nothing(tmp_path: Path):
    # Only trial 3 is on the front: the tighter tier (1.375 ms) has no member.
    folder = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO[2:])
    figure = _figures(write_report(folder).read_text(encoding="utf-8"))["figure-1"]
    assert _values(_trace(figure, PICKS)["x"]) == [PARETO[2]["latency_ms"]]
    labels = [a["text"] for a in figure[1]["annotations"] if a.get("name") == PICKS]
    assert labels == ["configured, looser: trial 3"]


def test_the_teachers_test_accuracy_is_a_labelled_line(figures, page: str):
    for div in ("figure-1", "figure-2"):
        layout = figures[div][1]
        [line] = [s for s in layout["shapes"] if s["yref"] == "y"]
        assert line["y0"] == line["y1"] == TEACHER_ACCURACY
        assert line["line"]["dash"] == "dash"
        texts = [a["text"] for a in layout["annotations"]]
        assert "teacher: 98.1% (test accuracy)" in texts
        low, high = layout["yaxis"]["range"]
        assert high > TEACHER_ACCURACY and low < min(row["accuracy"] for row in PARETO)
    assert "the teacher&#x27;s test accuracy (98.1%)" in _caption(page, "Accuracy against latency")


def test_a_teacher_far_above_widens_the_range_and_keeps_every_trial(tmp_path: Path):
    low = [{**row, "accuracy": row["accuracy"] / 3} for row in PARETO + OTHERS]
    folder = _write_run(tmp_path / "run", low, [row for row in low if row["number"] <= 3])
    (folder / "run.json").write_text(
        json.dumps({**RUN, "teacher": {**RUN["teacher"], "test_accuracy": 0.995}})
    )
    layout = _figures(write_report(folder).read_text(encoding="utf-8"))["figure-1"][1]
    bottom, top = layout["yaxis"]["range"]
    accuracies = [row["accuracy"] for row in low if not math.isnan(row["accuracy"])]
    assert bottom < min(accuracies) and 0.995 < top < 1.1  # room for the label, no more


def test_without_a_teacher_accuracy_there_is_no_line(tmp_path: Path):
    folder = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    (folder / "run.json").write_text(json.dumps({**RUN, "teacher": {"params": 120000}}))
    page = write_report(folder).read_text(encoding="utf-8")
    layout = _figures(page)["figure-1"][1]
    assert not [s for s in layout.get("shapes", []) if s["yref"] == "y"]
    assert "range" not in layout.get("yaxis", {})
    assert "(test accuracy)" not in page and "teacher&#x27;s test accuracy" not in page


def test_captions_say_the_figures_are_validation_and_the_summary_test(page: str):
    for heading in ("Accuracy against latency", "Accuracy against peak memory"):
        caption = _caption(page, heading)
        assert SPLITS in caption and "the two differ by chance" in caption
        assert "Black diamonds, labelled, mark the model the summary recommends" in caption


def test_stopped_trials_are_called_stopped_early_in_figures_only(run_dir: Path, figures):
    for div in ("figure-1", "figure-2", "figure-3d"):
        names = [trace.get("name", "") for trace in figures[div][0]]
        assert "stopped early (1)" in names
        assert not [name for name in names if "pruned" in name]
        hover = " ".join(str(text) for trace in figures[div][0] for text in trace.get("text", []))
        assert "trial 7</b>: stopped early" in hover and "</b>: pruned" not in hover
    # The data keep Optuna's word.
    assert "pruned" in set(pd.read_csv(run_dir / "trials.csv")["status"])


def test_an_outlier_is_cut_off_and_the_caption_counts_what_lies_beyond(figures, page: str):
    # Latency: budget 2.75 ms -> edge at 5.5 ms (the front ends at 2.5 ms: 2.875 with room);
    # beyond it trials 5 (9 ms), 8 (40 ms) and 9 (12 ms).
    assert figures["figure-1"][1]["xaxis"]["range"][1] == pytest.approx(5.5)
    caption = _caption(page, "Accuracy against latency")
    assert "the latency axis stops at 5.5 ms: 3 trials lie beyond its right edge" in caption
    assert "the furthest at 40 ms." in caption
    # Peak memory: budget 64 KB -> 128 KB; beyond it 300, 900 and 1,200 KB.
    assert figures["figure-2"][1]["xaxis"]["range"][1] == pytest.approx(128.0)
    caption = _caption(page, "Accuracy against peak memory")
    assert "stops at 128 KB: 3 trials lie beyond its right edge, the furthest at 1,200 KB" in (
        caption
    )
    # The 3-D view, turned by hand, keeps every trial.
    assert "range" not in figures["figure-3d"][1]["scene"].get("xaxis", {})


def test_nothing_is_cut_off_when_everything_fits(tmp_path: Path):
    near = [row for row in PARETO + OTHERS if row["number"] != 5]
    folder = _write_run(tmp_path / "run", near, PARETO)
    page = write_report(folder).read_text(encoding="utf-8")
    for div in ("figure-1", "figure-2"):
        assert "range" not in _figures(page)[div][1].get("xaxis", {})
    assert "lie beyond its right edge" not in page


def test_the_page_prints_figures_whole_and_without_buttons(page: str):
    style = page.split("@media print {")[1].split("\n}\n")[0]
    assert "break-inside: avoid" in style and ".plotly-graph-div" in style
    assert ".modebar" in style and "display: none" in style


def test_printed_3d_view_is_a_picture_and_the_rest_prints_whole(run_dir: Path, browser):  # noqa: F811
    # WebGL prints as a blank box: the page keeps a picture of the 3-D view for paper.
    page, errors = _open(browser, run_dir / "report.html")
    try:
        page.wait_for_function(
            "() => { const i = document.querySelector('img.print-copy');"
            " return i && i.src.startsWith('data:image/png') && i.naturalWidth > 0; }"
        )
        page.emulate_media(media="print")
        shown = page.evaluate(
            """() => ({
                live3d: getComputedStyle(document.getElementById('figure-3d')).display,
                copy: getComputedStyle(document.querySelector('img.print-copy')).display,
                modebars: Array.from(document.querySelectorAll('.modebar-container'))
                    .map((m) => getComputedStyle(m).display),
                figure: getComputedStyle(document.getElementById('figure-1')).breakInside,
            })"""
        )
        assert shown["live3d"] == "none" and shown["copy"] == "block"
        assert shown["modebars"] and set(shown["modebars"]) == {"none"}
        assert shown["figure"] == "avoid"
        page.emulate_media(media="screen")
        assert (
            page.evaluate("getComputedStyle(document.querySelector('img.print-copy')).display")
            == "none"
        )
        assert errors == []
    finally:
        page.close()


def test_the_importance_says_how_many_trials_it_rests_on_and_the_split_its_resolution():
    from search.report.captions import splits_note
    from search.report.search_progress import importance_caption

    caption = importance_caption({"accuracy": {"s0_width": 0.7, "num_stages": 0.3}}, completed=1)
    assert "It rests on 1 completed trial for 2 parameters" in caption
    note = splits_note({"split_sizes": {"validation": 68, "test": 120}})
    assert "With 68 validation images, one image is 1.5 points of validation accuracy" in note
    assert splits_note({}).endswith("so the two differ by chance.")
