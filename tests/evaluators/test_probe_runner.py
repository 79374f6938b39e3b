"""The kit's run_probes.py (``evaluators.probe_runner``): help, progress and Ctrl-C."""

from __future__ import annotations

import csv

import pytest

from evaluators import probe_runner


@pytest.fixture
def kit(tmp_path):
    names = ["empty.onnx", "layer_00000_conv_int8.onnx", "layer_00001_dwconv_int8.onnx"]
    (tmp_path / "probes.csv").write_text("probe,role\n" + "".join(f"{n},x\n" for n in names))
    return tmp_path


def test_runner_options_have_help(capsys):
    with pytest.raises(SystemExit):
        probe_runner.main(["--help"])
    out = capsys.readouterr().out
    for words in ("the probe kit folder", "intra-op threads", "untimed runs", "timed runs per"):
        assert words in out
    assert "passes over the whole kit" in out


def test_runner_progress_says_what_the_total_counts_and_time_left(kit, monkeypatch, capsys):
    monkeypatch.setattr(probe_runner, "measure", lambda *a: (0.5, 0.6))
    assert probe_runner.main(["--dir", str(kit), "--passes", "2"]) == 0
    err = capsys.readouterr().err
    assert "6/6 probe timings (3 probes x 2 passes), about 0 s left" in err
    assert (kit / "measurements.csv").is_file()


def test_ctrl_c_saves_what_was_timed(kit, monkeypatch, capsys):
    calls = []

    def measure(path, *args):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return (0.5, 0.6)

    monkeypatch.setattr(probe_runner, "measure", measure)
    (kit / "measurements.csv").write_text("probe,median_ms\nempty.onnx,0.4\n")  # a full run's
    assert probe_runner.main(["--dir", str(kit)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    partial = kit / "measurements.partial.csv"
    assert f"interrupted: saved the 2 of 3 probes timed so far to {partial}" in err
    rows = list(csv.DictReader(partial.open()))
    assert [r["probe"] for r in rows] == ["empty.onnx", "layer_00000_conv_int8.onnx"]
    assert (kit / "measurements.partial.json").is_file()
    assert "0.4" in (kit / "measurements.csv").read_text()  # not replaced by the partial
