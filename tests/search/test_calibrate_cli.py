"""`paretonas probe` / `paretonas calibrate`: mistakes are one line and exit code 2."""

from __future__ import annotations

import json

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


def test_devices_lists_profiles_and_whether_a_predictor_is_fitted(mcu_kit, tmp_path, capsys):
    # cortex-a72: a folder fitted before calibration refused too few probes (nothing to
    # fit on); cortex-m7: calibrated on enough.
    stale = tmp_path / "results" / "devices" / "cortex-a72" / "predictor"
    stale.mkdir(parents=True)
    (stale / "meta.json").write_text("{}")
    assert main(_calibrate_m7(mcu_kit, tmp_path, _measure(mcu_kit, 168, models=12))) == 0
    capsys.readouterr()
    assert main(["devices", "--results", str(tmp_path / "results")]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert {"host", "cortex-m7", "cortex-a72", "bitserial"} <= set(lines)
    assert "measured (ONNX Runtime here)" in lines["host"]
    assert "predictor" not in lines["host"]  # none under this results folder
    # What a search in this results folder predicts with, in the reports' words.
    assert "predicted (fitted predictor, not the roofline)" in lines["cortex-m7"]
    assert "refused: its fitted predictor: probes.csv missing" in lines["cortex-a72"]
    assert "predicted (roofline, a lower bound)" in lines["bitserial"]
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
        ("probe,median_ms\nempty.onnx,0.1\n", "measures 0 of the kit's 2 layer probes"),
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


@pytest.fixture(scope="module")
def mcu_kit(tmp_path_factory):
    """An int8-only kit's probes.csv (168 layer probes, 12 networks), without ONNX files."""
    import itertools

    from evaluators.probes import layer_probes, model_probes, write_probe_csv

    kit = tmp_path_factory.mktemp("mcu-kit")
    int8 = ("int8",)
    probes = layer_probes(168, unsigned_weights=False, precisions=int8)
    probes += list(itertools.islice(model_probes(precisions=int8), 12))
    write_probe_csv(kit / "probes.csv", probes)
    return kit


def _law_ms(rows, empty_ms: float = 0.1) -> float:
    """A board's time: MACs at 2e8/s and bytes at 8e8/s, 5 us per kernel, plus the run's."""
    return empty_ms + sum(r.macs / 2e5 + r.bytes / 8e5 + 0.005 for r in rows)


def _measure(
    kit,
    layers: int,
    *,
    models: int = 0,
    suffix=".onnx",
    shuffled=False,
    empty_ms: float = 0.1,
    noise: float = 0.0,
) -> str:
    import random

    from evaluators.probes import read_probe_csv

    probes = read_probe_csv(kit / "probes.csv")
    chosen = [n for n, (role, _, _) in probes.items() if role == "layer"][:layers]
    chosen += [n for n, (role, _, _) in probes.items() if role == "model"][:models]
    draw = random.Random(1)
    times = [_law_ms(probes[n][2], empty_ms) * (1 + draw.gauss(0, noise)) for n in chosen]
    if shuffled:  # every time belongs to another probe: what a mixed-up file looks like
        random.Random(0).shuffle(times)
    rows = [("empty.onnx", empty_ms), *zip(chosen, times, strict=True)]
    return "probe,median_ms\n" + "".join(
        f"{name.replace('.onnx', suffix)},{ms:.6f}\n" for name, ms in rows
    )


def _calibrate_m7(kit, tmp_path, measurements: str) -> list[str]:
    (tmp_path / "m.csv").write_text(measurements)
    return [
        "calibrate",
        "--device",
        "cortex-m7",
        "--kit",
        str(kit),
        "--measurements",
        str(tmp_path / "m.csv"),
        "--results",
        str(tmp_path / "results"),
    ]


def test_calibrate_refuses_measurements_of_too_few_layer_probes(mcu_kit, tmp_path, capsys):
    # The walkthrough's file: the empty probe and one layer. It used to fit a model that
    # predicted the same latency for every network and replaced the roofline silently.
    assert main(_calibrate_m7(mcu_kit, tmp_path, _measure(mcu_kit, 1))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "m.csv measures 1 of the kit's 168 layer probes, too few" in err
    assert "needs 10 measured layer probes" in err and "conv/int8 1 of 10" in err
    assert "time at least the kit's first " in err and "layer_00000_conv_int8.onnx through" in err
    assert not (tmp_path / "results").exists()  # nothing cached: the roofline stays


def test_calibrate_on_the_kits_first_layer_probes_says_what_it_replaces(
    mcu_kit, tmp_path, capsys, caplog
):
    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from evaluators.predictor import MIN_HELD_OUT_MODELS
    from evaluators.probes import Coverage, read_probe_csv
    from spaces import get_candidate

    needed = Coverage.of(read_probe_csv(mcu_kit / "probes.csv"), ()).prefix()
    assert needed < 168
    # Probes timed on the board after conversion keep their names, not their extension.
    measured = _measure(mcu_kit, needed, models=MIN_HELD_OUT_MODELS, suffix=".tflite")
    assert main(_calibrate_m7(mcu_kit, tmp_path, measured)) == 0
    err = capsys.readouterr().err
    assert (
        f"fitted on {needed} kernel + {MIN_HELD_OUT_MODELS} model measurements on cortex-m7;" in err
    )
    assert "ORT" not in err and "thread(s)" not in err  # timed on the board, not in ORT
    assert "held-out networks" in err
    assert "predict latency with it, not with the device's roofline" in err

    with caplog.at_level("INFO", logger="evaluators.predictor"):
        oracle = LatencyOracle.for_device(get_device("cortex-m7"), tmp_path / "results")
        LatencyOracle.for_device(get_device("cortex-m7"), tmp_path / "results")
    said = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("latency predictor: ")
    ]
    assert len(said) == 1 and "kernel model fitted on" in said[0]  # a search says which
    small, large = get_candidate("tiny_mixed"), get_candidate("mobilenetv2_035")
    ms = [oracle.predict(c, (1, 16, 16), 10).latency_ms for c in (small, large)]
    assert ms[0] != pytest.approx(ms[1], rel=0.05)


def test_calibrate_refuses_a_predictor_that_mispredicts_held_out_probes(mcu_kit, tmp_path, capsys):
    measured = _measure(mcu_kit, 168, models=12, shuffled=True)
    assert main(_calibrate_m7(mcu_kit, tmp_path, measured)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "on the 12 networks it was not fitted on, more than the 25% a calibration accepts" in err
    assert not (tmp_path / "results").exists()


def test_without_networks_the_held_out_check_weighs_kernels_by_time(mcu_kit, tmp_path):
    # Layer probes only: mixed-up times are still refused, while the timing noise of a
    # board whose empty run takes 1 ms (5%, far more than a kernel's few microseconds) is
    # not taken for the predictor's error, as a median of ratios took it.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shuffled = _measure(mcu_kit, 168, shuffled=True)
    assert main(_calibrate_m7(mcu_kit, tmp_path / "a", shuffled)) == 2
    noisy = _measure(mcu_kit, 168, empty_ms=1.0, noise=0.05)
    assert main(_calibrate_m7(mcu_kit, tmp_path / "b", noisy)) == 0


def test_a_search_refuses_a_cached_predictor_fitted_on_too_few_probes(mcu_kit, tmp_path):
    # A folder calibrated before the check: the search stops instead of using it.
    import shutil

    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from evaluators.predictor import CalibrationError, predictor_dir

    folder = predictor_dir("cortex-m7", tmp_path)
    folder.mkdir(parents=True)
    shutil.copyfile(mcu_kit / "probes.csv", folder / "probes.csv")
    (folder / "measurements.csv").write_text(_measure(mcu_kit, 1))
    (folder / "meta.json").write_text('{"device": "cortex-m7"}')
    with pytest.raises(CalibrationError) as err:
        LatencyOracle.for_device(get_device("cortex-m7"), tmp_path)
    message = str(err.value)
    assert f"the latency predictor in {folder} was fitted on 1 of the kit's 168" in message
    assert f"calibrate again, or delete {folder} to do without it" in message
    assert message.endswith("give the search a new --name)")


def test_probe_says_how_many_layer_probes_calibration_needs(tmp_path, monkeypatch, capsys, caplog):
    from evaluators.probes import write_probe_kit

    monkeypatch.setattr(
        "evaluators.probes.write_probe_kit",
        lambda out, **kwargs: write_probe_kit(out, layer_count=30, model_count=1, **kwargs),
    )
    # An older kit's times in the folder: set aside, or calibrate would fit on them.
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "measurements.csv").write_text("probe,median_ms\nempty.onnx,0.1\n")
    (tmp_path / "kit" / "measurements.partial.csv").write_text("probe,median_ms\n")
    assert main(["probe", "--device", "cortex-m7", "--out", str(tmp_path / "kit")]) == 0
    info = json.loads((tmp_path / "kit" / "kit.json").read_text())
    needed = info["min_layer_probes"]
    err = capsys.readouterr().err
    assert f"at least its first {needed} layer probes" in err
    assert info["device"] == "cortex-m7" and info["input_shape"] == [1, 28, 28]
    readme = (tmp_path / "kit" / "README.txt").read_text()
    assert "Made for device cortex-m7, at input 1x28x28." in readme
    assert "paretonas calibrate --device cortex-m7 --measurements" in readme
    assert not (tmp_path / "kit" / "measurements.csv").exists()
    (old,) = (tmp_path / "kit").glob("measurements.old-*.csv")
    assert old.read_text().startswith("probe,median_ms") and old.name in caplog.text
    assert not (tmp_path / "kit" / "measurements.partial.csv").exists()  # an interrupted run's
    assert len(list((tmp_path / "kit").glob("measurements.partial.old-*.csv"))) == 1


def _scaled(measurements: str, factor: float) -> str:
    """Every time of ``measurements`` times ``factor``: a wrong unit, or a faster machine."""
    head, *rows = measurements.splitlines()
    scaled = [f"{n},{float(ms) * factor:.9f}" for n, ms in (r.split(",") for r in rows)]
    return "\n".join([head, *scaled]) + "\n"


def test_the_simulated_board_is_plausible_for_its_roofline(mcu_kit):
    # What the thresholds below are chosen against: _law_ms runs at ~2x cortex-m7's peak.
    from evaluators.devices import get_device
    from evaluators.predictor import (
        MAX_ROOFLINE_RATIO,
        MIN_ROOFLINE_RATIO,
        ProbeMeasurements,
        roofline_ratio,
    )

    m7 = get_device("cortex-m7")
    for layers, models, what in ((168, 0, "kernels"), (168, 12, "networks")):
        path = mcu_kit / f"law-{models}.csv"
        path.write_text(_measure(mcu_kit, layers, models=models))
        ratio, found = roofline_ratio(ProbeMeasurements.read(mcu_kit / "probes.csv", path), m7)
        assert found == what and 4 * MIN_ROOFLINE_RATIO < ratio < MAX_ROOFLINE_RATIO / 50


@pytest.mark.parametrize(
    ("factor", "expected"),
    [
        (1000, "likely in microseconds or another unit than milliseconds"),
        (1 / 7, "likely timed on another machine (this host?) rather than on the cortex-m7"),
        (0.1, "faster than that lower bound allows"),
    ],
)
def test_calibrate_refuses_times_implausible_for_the_roofline(
    mcu_kit, tmp_path, capsys, factor, expected
):
    # The held-out check compares the file with itself: a whole file scaled passes it.
    measured = _scaled(_measure(mcu_kit, 168, models=12), factor)
    assert main(_calibrate_m7(mcu_kit, tmp_path, measured)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert expected in err and "x the roofline of cortex-m7's public numbers" in err
    assert "fix latency.macs_per_second and bytes_per_second in its YAML" in err
    assert not (tmp_path / "results").exists()


def test_calibrate_refuses_a_kit_of_another_device_and_records_its_input(mcu_kit, tmp_path, capsys):
    import shutil

    from evaluators.predictor import fitted_input_shape, predictor_dir

    kit = tmp_path / "kit"
    kit.mkdir()
    shutil.copyfile(mcu_kit / "probes.csv", kit / "probes.csv")
    (kit / "kit.json").write_text(json.dumps({"device": "cortex-m7", "input_shape": [1, 16, 16]}))
    (kit / "m.csv").write_text(_measure(mcu_kit, 168, models=12))
    argv = ["calibrate", "--kit", str(kit), "--measurements", str(kit / "m.csv")]
    argv += ["--results", str(tmp_path / "results")]
    assert main([*argv, "--device", "cortex-a72"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "was written for device cortex-m7, not cortex-a72; calibrate with --device" in err
    assert not (tmp_path / "results").exists()

    assert main([*argv, "--device", "cortex-m7"]) == 0
    folder = predictor_dir("cortex-m7", tmp_path / "results")
    assert fitted_input_shape(folder) == (1, 16, 16)
    assert fitted_input_shape(tmp_path) is None  # nothing recorded


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("probe,median_ms\nempty.onnx,nan\n", "line 2: median_ms of empty.onnx is nan, not a"),
        ("probe,median_ms\nempty.onnx,0.1\nempty.onnx,inf\n", "line 3: median_ms of empty"),
        ("probe,median_ms\nempty.onnx,0\n", "line 2: median_ms of empty.onnx is 0, not a time"),
        ("probe,median_ms\nempty.onnx,-1\n", "line 2: median_ms of empty.onnx is -1, not a"),
        (
            "probe,median_ms\nempty.onnx,0.1\nempty.onnx,0.2\n",
            "line 3: probe empty.onnx is listed again (first on line 2); keep one row",
        ),
        # A spreadsheet's export: a byte-order mark, capitals, spaces around the names.
        ("\ufeff Probe , Median_MS \nempty.onnx,0.1\n", "measures 0 of the kit's 2 layer"),
    ],
)
def test_measurement_values_a_fit_cannot_use_are_one_line(
    kit, tmp_path, monkeypatch, capsys, csv, expected
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text(csv, encoding="utf-8")
    argv = ["calibrate", "--device", "cortex-a72", "--measurements", "m.csv", "--kit", str(kit)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_measurements_given_a_folder_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kit").mkdir()
    argv = ["calibrate", "--device", "cortex-a72", "--measurements", "kit"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--measurements: kit is a folder, give the CSV file" in err and "\n" not in err


def test_a_predictor_folder_missing_a_file_is_one_clear_refusal(mcu_kit, tmp_path):
    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from evaluators.predictor import (
        CalibrationError,
        predictor_dir,
        predictor_problem,
    )

    assert main(_calibrate_m7(mcu_kit, tmp_path, _measure(mcu_kit, 168, models=12))) == 0
    folder = predictor_dir("cortex-m7", tmp_path / "results")
    assert predictor_problem(folder) is None
    (folder / "measurements.csv").unlink()
    assert predictor_problem(folder) == "measurements.csv missing"
    with pytest.raises(CalibrationError) as err:
        LatencyOracle.for_device(get_device("cortex-m7"), tmp_path / "results")
    assert f"the latency predictor in {folder} has no measurements.csv; calibrate again" in str(
        err.value
    )
    (folder / "measurements.csv").write_text(_measure(mcu_kit, 1))
    assert predictor_problem(folder) == "too few probes"
