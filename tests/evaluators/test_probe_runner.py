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


def _ctrl_c_at(call: int, calls: list):
    """A fake ``measure`` that lists the probes it is given and is interrupted (Ctrl-C) at
    call number ``call``."""

    def measure(path, *args):
        calls.append(path)
        if len(calls) == call:
            raise KeyboardInterrupt
        return (0.5, 0.6)

    return measure


def test_ctrl_c_saves_what_was_timed(kit, monkeypatch, capsys):
    monkeypatch.setattr(probe_runner, "measure", _ctrl_c_at(3, []))
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


def test_resume_times_each_probe_only_in_the_passes_it_missed(kit, monkeypatch, capsys):
    calls = []

    def measure(path, *args):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return (0.5 + len(calls), 0.6 + len(calls))

    monkeypatch.setattr(probe_runner, "measure", measure)
    assert probe_runner.main(["--dir", str(kit), "--passes", "2"]) == 130
    assert "run again with --resume" in capsys.readouterr().err
    # Only the first probe was timed (once); the second's timing was cut off.
    calls.clear()
    monkeypatch.setattr(
        probe_runner, "measure", lambda path, *a: calls.append(path.name) or (1.0, 1.1)
    )
    assert probe_runner.main(["--dir", str(kit), "--passes", "2", "--resume"]) == 0
    assert "1 of 3 probes timed, 5 timings to go" in capsys.readouterr().err
    assert calls.count("empty.onnx") == 1 and len(calls) == 5
    rows = {
        r["probe"]: float(r["median_ms"]) for r in csv.DictReader((kit / "measurements.csv").open())
    }
    assert rows == {
        "empty.onnx": 1.0,
        "layer_00000_conv_int8.onnx": 1.0,
        "layer_00001_dwconv_int8.onnx": 1.0,
    }
    assert not (kit / "measurements.partial.csv").exists()
    assert not (kit / "measurements.partial.json").exists()


def test_resume_refuses_other_settings_and_a_missing_partial(kit, monkeypatch, capsys):
    assert probe_runner.main(["--dir", str(kit), "--resume"]) == 2
    assert "no interrupted run to go on from" in capsys.readouterr().err
    calls = []
    measure = _ctrl_c_at(2, calls)
    monkeypatch.setattr(probe_runner, "measure", measure)
    assert probe_runner.main(["--dir", str(kit)]) == 130
    capsys.readouterr()
    assert probe_runner.main(["--dir", str(kit), "--resume", "--threads", "2"]) == 2
    err = capsys.readouterr().err
    assert "other settings (threads 1 then, 2 now)" in err and "Traceback" not in err
    # Without --resume a run starts over and says where the interrupted times are.
    monkeypatch.setattr(probe_runner, "measure", lambda *a: (0.5, 0.6))
    assert probe_runner.main(["--dir", str(kit)]) == 0
    assert "holds an interrupted run's times" in capsys.readouterr().err
    assert not (kit / "measurements.partial.csv").exists()  # superseded by the full file
    # A partial of another kit (probes.csv changed since) is refused.
    monkeypatch.setattr(probe_runner, "measure", measure)
    calls.clear()
    assert probe_runner.main(["--dir", str(kit)]) == 130
    (kit / "probes.csv").write_text("probe,role\nempty.onnx,x\n")
    capsys.readouterr()
    assert probe_runner.main(["--dir", str(kit), "--resume"]) == 2
    assert "other settings (kit" in capsys.readouterr().err
