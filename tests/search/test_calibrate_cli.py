"""`paretonas probe` / `paretonas calibrate`: mistakes are one line and exit code 2."""

from __future__ import annotations

import pytest

from search.cli import main
from search.config import ConfigError


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["calibrate", "--device", "cortex-m7"], "paretonas probe --device cortex-m7"),
        (["calibrate", "--device", "nope"], "unknown device 'nope'"),
        (
            ["calibrate", "--device", "cortex-a72", "--measurements", "missing.csv"],
            "does not exist",
        ),
        (["probe", "--device", "nope", "--out", "kit"], "unknown device 'nope'"),
    ],
)
def test_calibrate_mistakes_are_one_line(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_measurements_need_the_kit_beside_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "measurements.csv").write_text("probe,median_ms,p90_ms,runs\n")
    assert main(["calibrate", "--device", "cortex-a72", "--measurements", "measurements.csv"]) == 2
    assert "no probes.csv" in capsys.readouterr().err


def test_devices_lists_profiles_and_whether_a_predictor_is_fitted(tmp_path, capsys):
    fitted = tmp_path / "devices" / "cortex-a72" / "predictor"
    fitted.mkdir(parents=True)
    (fitted / "meta.json").write_text("{}")
    assert main(["devices", "--results", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert {"host", "cortex-m7", "cortex-a72", "bitserial"} <= set(lines)
    assert "measured (ONNX Runtime)" in lines["host"]
    assert "calibrated predictor" not in lines["host"]  # none under this results folder
    assert "roofline (modeled) + calibrated predictor" in lines["cortex-a72"]
    assert "8/8" in lines["cortex-m7"] and "320" in lines["cortex-m7"]
    assert "built-in" in lines["cortex-m7"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["probe", "--device", "cortex-a72", "--out", "a-file"], "--out a-file is a file"),
        (["export", "run", "--trial", "1", "--out", "a-file"], "--out a-file is a file"),
        (["report", "run", "--out", "a-folder"], "--out a-folder is a folder"),
        (["calibrate", "--device", "host", "--budget-seconds", "-5"], "must be positive"),
    ],
)
def test_a_wrong_out_or_budget_is_one_line(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "run").mkdir()
    for name in ("run.json", "trials.csv", "pareto.csv"):
        (tmp_path / "run" / name).write_text("")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from evaluators.probes import write_probe_kit

    return write_probe_kit(
        tmp_path_factory.mktemp("kit"), layer_count=2, model_count=0, progress=False
    )


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("name,ms\nempty.onnx,0.1\n", "has no column probe, median_ms (it has name, ms)"),
        ("probe,median_ms\nempty.onnx,fast\n", "line 2: median_ms 'fast' is not a number"),
        ("probe,median_ms\nother.onnx,0.1\n", "measures none of the probes"),
        ("probe,median_ms\nempty.onnx,0.1\n", "no layer probe was measured"),
    ],
)
def test_measurements_a_predictor_cannot_be_fitted_on_are_one_line(
    kit, tmp_path, monkeypatch, capsys, csv, expected
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text(csv)
    argv = ["calibrate", "--device", "cortex-a72", "--measurements", "m.csv", "--kit", str(kit)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_an_int8_only_devices_kit_probes_int8_kernels_from_its_space(tmp_path, monkeypatch):
    import csv

    from evaluators.probes import write_probe_kit
    from search import calibrate

    asked = {}

    def small_kit(out, **kwargs):
        asked.update(kwargs)
        return write_probe_kit(out, layer_count=12, model_count=3, **kwargs)

    monkeypatch.setattr("evaluators.probes.write_probe_kit", small_kit)
    kit = calibrate.probe("cortex-m7", tmp_path / "kit", progress=False)
    assert asked["precisions"] == ("int8",)
    assert asked["space"].weight_bits.values == (8,)
    rows = list(csv.DictReader((kit / "probes.csv").open()))
    layers = [r for r in rows if r["role"] == "layer"]
    assert layers and all(r["probe"].endswith("_int8.onnx") for r in layers)
    models = [r for r in rows if r["role"] == "model"]
    assert models and all("w32" not in r["genome"] for r in models)

    calibrate.probe("cortex-a72", tmp_path / "a72", progress=False)
    assert asked["precisions"] == ("fp32", "int8")


def test_a_probe_kit_follows_a_run_configs_input(tmp_path, monkeypatch):
    from search import calibrate

    asked = {}
    monkeypatch.setattr(
        "evaluators.probes.write_probe_kit", lambda out, **kwargs: asked.update(kwargs) or out
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        "dataset: {name: digits}\ndevice: {name: cortex-m7}\n"
        "space: {weight_bits: [8], activation_bits: [8]}\n"
    )
    calibrate.probe("cortex-m7", tmp_path / "kit", config=config, progress=False)
    assert asked["input_shape"] == (1, 8, 8) and asked["num_classes"] == 10
    with pytest.raises(ConfigError, match="is for device cortex-m7, not host"):
        calibrate.probe("host", tmp_path / "kit", config=config, progress=False)
