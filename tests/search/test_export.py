"""The export manifest says what model.pt holds, since no figure was measured on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.export import _weights_note
from spaces import ArchSpec, StageSpec
from spaces.candidate import Candidate, CompressionPolicy, StagePolicy

ARCH = ArchSpec(8, (StageSpec("dsconv", 1, 16, 3, stride=2),))


def _note(tmp_path: Path, policy: StagePolicy, quantization: str | None) -> str:
    candidate = Candidate(ARCH, CompressionPolicy((policy,)))
    (tmp_path / "candidate.json").write_text(candidate.to_json())
    config = {"compression": {"quantization": quantization}} if quantization else {}
    return _weights_note(tmp_path, yaml.safe_dump(config).encode())


def _fake_artifacts(folder: Path, candidate: Candidate) -> None:
    """A trial's artifact folder with placeholder files: what export copies, not runs."""
    folder.mkdir(parents=True)
    for name in ("model.onnx", "model.pt", "channels.json"):
        (folder / name).write_bytes(b"x")
    (folder / "candidate.json").write_text(candidate.to_json())


@pytest.mark.parametrize(
    ("policy", "quantization", "says", "never"),
    [
        (StagePolicy(), None, "not itself measured", "quantiz"),
        (StagePolicy(weight_bits=8, activation_bits=8), "qat", "before quantization-aware", "post-training"),
        (StagePolicy(weight_bits=8, activation_bits=8), None, "before quantization-aware", "post-training"),
        (StagePolicy(weight_bits=8, activation_bits=8), "ptq", "before post-training", "aware"),
        (StagePolicy(sparsity=0.5), None, "with the unstructured sparsity applied", "dense"),
        (StagePolicy(weight_bits=8, sparsity=0.5), "qat", "dense (the unstructured", "applied;"),
        (StagePolicy(weight_bits=8, sparsity=0.5), "ptq", "with the unstructured sparsity", "dense"),
    ],
)  # fmt: skip
def test_the_manifest_says_what_model_pt_holds(tmp_path, policy, quantization, says, never):
    note = _note(tmp_path, policy, quantization)
    assert says in note and never not in note


def test_loading_a_folder_that_is_not_an_export_says_how_to_make_one(tmp_path):
    from search.export import load_exported

    (tmp_path / "model.pt").write_bytes(b"")  # what a run's models/<trial>/ folder holds
    with pytest.raises(FileNotFoundError, match=r"not an export folder.*paretonas export"):
        load_exported(tmp_path)


def _run_folder(tmp_path: Path, front: list[int]) -> Path:
    """A run folder as the search writes it, with two trials of status ok."""
    import json

    import pandas as pd

    run = tmp_path / "run"
    candidate = Candidate(ARCH, CompressionPolicy((StagePolicy(),)))
    rows = []
    for number in (0, 1):
        _fake_artifacts(run / "models" / str(number), candidate)
        rows.append({"number": number, "status": "ok", "genome": candidate.genome,
                     "artifacts": f"models/{number}", "test_accuracy": 0.9})  # fmt: skip
    pd.DataFrame(rows).to_csv(run / "trials.csv", index=False)
    pd.DataFrame([r for r in rows if r["number"] in front]).to_csv(run / "pareto.csv", index=False)
    tiers = [
        {"name": "tighter (bounds x0.5)", "budget": {"latency_ms": 0.5}, "trial": None},
        {"name": "configured budget", "budget": {"latency_ms": 1.0}, "trial": 1},
    ]
    (run / "summary.json").write_text(json.dumps({"tiers": tiers}))
    return run


def test_exporting_a_trial_off_the_front_warns_and_the_manifest_says_so(tmp_path, caplog):
    import json

    from search.export import export_trial

    run = _run_folder(tmp_path, front=[1])
    out = export_trial(run, 0, tmp_path / "ship")
    chosen = json.loads((out / "manifest.json").read_text())["chosen"]
    assert chosen.startswith("named with --trial; not on the run's Pareto front")
    assert "trial 0 is not on the run's Pareto front (pareto.csv: trials 1)" in caplog.text
    caplog.clear()
    export_trial(run, 1, tmp_path / "ship1")
    assert "Pareto" not in caplog.text


def test_the_recommended_trial_is_the_tiers_or_one_clear_sentence(tmp_path):
    import json

    from search.config import ConfigError
    from search.export import recommended_trial

    run = _run_folder(tmp_path, front=[1])
    trial, why = recommended_trial(run)
    assert trial == 1 and why.startswith(
        "recommended for the configured budget, latency \u2264 1 ms, peak memory: no"
    )
    with pytest.raises(ConfigError, match=r"no model of .* meets the tighter .*--tier"):
        recommended_trial(run, "TIGHT")
    with pytest.raises(
        ConfigError, match=r"no budget tier 'fast'; pass --tier tighter, 'configured budget'"
    ):
        recommended_trial(run, "fast")
    # The knee point is no budget's pick, but the report promotes it: --tier knee finds it.
    with pytest.raises(ConfigError, match=r"has no knee point"):
        recommended_trial(run, "knee")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "knee": {"trial": 0}}))
    trial, why = recommended_trial(run, "Knee")
    assert trial == 0 and why.startswith("the knee point")
    (run / "summary.json").unlink()
    with pytest.raises(ConfigError, match=r"no summary.json; run 'paretonas report"):
        recommended_trial(run)


def test_a_tiers_whole_name_wins_and_an_ambiguous_start_is_refused(tmp_path):
    import json

    from search.config import ConfigError
    from search.export import recommended_trial

    run = _run_folder(tmp_path, front=[0, 1])
    tiers = [
        {"name": "phone-lite", "budget": {"latency_ms": 0.5}, "trial": 0},
        {"name": "phone", "budget": {"latency_ms": 1.0}, "trial": 1},
    ]
    (run / "summary.json").write_text(json.dumps({"tiers": tiers}))
    assert recommended_trial(run, "phone")[0] == 1
    assert recommended_trial(run, "Phone-L")[0] == 0
    with pytest.raises(ConfigError, match=r"more than one budget tier named 'ph'"):
        recommended_trial(run, "ph")


def test_a_trial_trained_on_another_machine_says_where_its_files_are(tmp_path):
    import pandas as pd

    from search.config import ConfigError
    from search.export import export_trial

    run = _run_folder(tmp_path, front=[1])
    trials = pd.read_csv(run / "trials.csv")
    trials["worker"] = ["gpu-box-7:4242:1234.5", "gpu-box-7:4242:1234.5"]
    trials.to_csv(run / "trials.csv", index=False)
    (run / "models" / "1" / "model.onnx").unlink()
    with pytest.raises(ConfigError, match=r"lack model.onnx; it was trained on gpu-box-7: copy"):
        export_trial(run, 1, tmp_path / "ship")
    # A blank worker cell (a baseline's, say) reads back as NaN: no machine is named.
    trials["worker"] = [None, None]
    trials.to_csv(run / "trials.csv", index=False)
    with pytest.raises(ConfigError) as error:
        export_trial(run, 1, tmp_path / "ship")
    assert str(error.value).endswith("lack model.onnx")


@pytest.mark.parametrize("unsigned", [False, True])
def test_the_manifest_reads_how_the_int8_file_stores_its_layers(tmp_path, monkeypatch, unsigned):
    from evaluators import quantize
    from evaluators.probes import export_candidate
    from search.export import quantization_format

    monkeypatch.setattr(quantize, "weights_unsigned", lambda: unsigned)
    int8 = Candidate(ARCH, CompressionPolicy((StagePolicy(weight_bits=8, activation_bits=8),)))
    found = quantization_format(export_candidate(int8, (1, 8, 8), 10, tmp_path / "q.onnx"))
    assert found["format"].startswith("ONNX QDQ")
    weights = [p for p in found["parameters"] if p.startswith("weights")]
    expected = (
        "uint8, per output channel, zero point 128"
        if unsigned
        else "int8, per output channel, zero point 0"
    )
    assert weights == [f"weights: {expected}"]
    assert ("note" in found) is unsigned
    assert found["input"]["scale"] > 0 and found["activations"] == ["uint8, per tensor"]

    fp32 = Candidate(ARCH, CompressionPolicy((StagePolicy(),)))
    plain = quantization_format(export_candidate(fp32, (1, 8, 8), 10, tmp_path / "f.onnx"))
    assert plain == {"format": "fp32: no quantized layer"}


def test_the_manifest_reads_a_dynamically_quantized_file(tmp_path):
    from evaluators.probes import export_candidate
    from evaluators.quantize import quantize_linear_dynamic
    from search.export import quantization_format

    fp32 = Candidate(ARCH, CompressionPolicy((StagePolicy(),)))
    source = export_candidate(fp32, (1, 8, 8), 10, tmp_path / "f.onnx")
    quantize_linear_dynamic(source, tmp_path / "d.onnx")
    found = quantization_format(tmp_path / "d.onnx")
    assert "dynamic: MatMulInteger" in found["format"]
    assert found["parameters"] and all(p.startswith("weights: ") for p in found["parameters"])
    assert "scale computed at run time" in found["activations"][0]


def test_a_run_that_predates_the_preprocessing_record_gets_it_from_its_data(tmp_path, caplog):
    import json
    import shutil

    from search.export import export_trial

    run = _run_folder(tmp_path, front=[1])
    (run / "run.json").write_text(json.dumps({"name": "old", "input_shape": [1, 8, 8]}))
    out = export_trial(run, 1, tmp_path / "no-data")
    pre = json.loads((out / "manifest.json").read_text())["preprocessing"]
    assert pre.startswith("not recorded") and "no such file" in pre.lower()
    assert "cannot say how to normalise raw pixels" in caplog.text

    # With the run's config (digits, bundled with scikit-learn) the statistics are computed.
    shutil.copy(Path(__file__).parents[2] / "configs" / "quickstart.yaml", run / "config.yaml")
    out = export_trial(run, 1, tmp_path / "with-data")
    pre = json.loads((out / "manifest.json").read_text())["preprocessing"]
    assert pre["pixel_scale"] == 16 and len(pre["mean"]) == 1
    assert pre["source"].startswith("computed at export")


def test_a_signed_rewrite_that_fails_is_said_and_the_export_goes_on(tmp_path, monkeypatch):
    from evaluators import signed_int8
    from search.export import RunData, write_signed

    def broken(source, target):
        Path(target).write_bytes(b"half")
        raise RuntimeError("unexpected graph")

    monkeypatch.setattr(signed_int8, "to_signed", broken)
    (tmp_path / "model.onnx").write_bytes(b"x")
    found = write_signed(RunData(tmp_path), None, tmp_path)
    assert found == {"file": None, "why": "the rewrite failed (RuntimeError: unexpected graph)"}
    assert not (tmp_path / "model.s8s8.onnx").exists()


def test_a_signed_file_of_a_mixed_model_says_which_stages_stay_fp32(tmp_path):
    import pandas as pd

    from evaluators.probes import export_candidate
    from evaluators.quantize import describe_execution
    from search.export import RunData, _fp32_stages, write_signed

    policies = (StagePolicy(), StagePolicy(weight_bits=8, activation_bits=8))
    two = ArchSpec(8, (StageSpec("dsconv", 1, 16, 3, stride=2), StageSpec("dsconv", 1, 16, 3)))
    mixed = Candidate(two, CompressionPolicy(policies))
    export_candidate(mixed, (1, 8, 8), 10, tmp_path / "model.onnx")
    executed = ", ".join(describe_execution(p) for p in policies)
    row = pd.Series({"executed": executed})
    found = write_signed(RunData(tmp_path), row, tmp_path)
    assert found["file"] == "model.s8s8.onnx"
    assert found["mixed_precision"].startswith("stage 0 runs in fp32 in this file")
    assert "w8a8 in every stage" in found["mixed_precision"]
    weight_only = StagePolicy(weight_bits=8, activation_bits=32)
    four_bit = StagePolicy(weight_bits=4, activation_bits=8)
    text = ", ".join(describe_execution(p) for p in (weight_only, four_bit, StagePolicy()))
    assert _fp32_stages(text) == [0, 2] and _fp32_stages(None) == []
    assert _fp32_stages("w8a8 int8, w8a8 int8") == []


# -- the walkthrough's run: an int8-only MCU, its latency a roofline, two baselines --------------

ROOFLINE = "predicted (roofline of cortex-m7's public numbers)"
MCU_RUN = {
    "name": "m2",
    "input_shape": [1, 8, 8],
    "objectives": [
        {"name": "accuracy", "direction": "maximize"},
        {"name": "latency_ms", "direction": "minimize"},
        {"name": "peak_memory_kb", "direction": "minimize"},
    ],
    "budget": {"latency_ms": 5.0, "peak_memory_kb": 64.0, "flash_kb": None},
    "device": {"name": "cortex-m7", "latency": "roofline"},
}
# (number, baseline, val accuracy, latency ms, peak memory KB, feasible): members 0 and 1;
# baseline 2 more accurate than every member (off the front only for being a baseline);
# baseline 3 no better than member 1 anywhere; baseline 4 over the budget.
MCU_TRIALS = [
    (0, None, 0.60, 0.3, 6.0, True),
    (1, None, 0.95, 1.0, 12.0, True),
    (2, "plain_cnn", 0.98, 4.3, 6.0, True),
    (3, "mobilenetv2_035", 0.90, 2.0, 15.0, True),
    (4, "mobilenetv2_050", 0.99, 9.0, 40.0, False),
]


def _mcu_run(tmp_path: Path) -> Path:
    import json

    import pandas as pd

    run = tmp_path / "m2"
    candidate = Candidate(ARCH, CompressionPolicy((StagePolicy(weight_bits=8, activation_bits=8),)))
    rows = []
    for number, baseline, accuracy, latency, memory, feasible in MCU_TRIALS:
        _fake_artifacts(run / "checkpoints" / str(number), candidate)
        rows.append({"number": number, "status": "ok", "genome": candidate.genome,
                     "feasible": feasible, "artifacts": f"checkpoints/{number}",
                     "baseline": baseline, "accuracy": accuracy, "test_accuracy": accuracy,
                     "latency_ms": latency, "latency_source": ROOFLINE,
                     "peak_memory_kb": memory})  # fmt: skip
    trials = pd.DataFrame(rows)
    trials.to_csv(run / "trials.csv", index=False)
    trials[trials["number"] < 2].to_csv(run / "pareto.csv", index=False)
    (run / "run.json").write_text(json.dumps(MCU_RUN))
    return run


def test_a_baseline_is_said_to_be_one_and_whether_a_member_beats_it_is_computed(tmp_path, caplog):
    import json

    from search.export import export_trial

    run = _mcu_run(tmp_path)
    out = export_trial(run, 2, tmp_path / "plain")
    chosen = json.loads((out / "manifest.json").read_text())["chosen"]
    assert chosen.startswith("named with --trial; the hand-designed baseline plain_cnn, not a")
    assert "never on it; no member is at least as good on every objective" in chosen
    assert "some member is at least as good" not in chosen
    assert "trial 2 is the hand-designed baseline plain_cnn" in caplog.text

    out = export_trial(run, 3, tmp_path / "mnv2")
    chosen = json.loads((out / "manifest.json").read_text())["chosen"]
    assert "baseline mobilenetv2_035" in chosen
    assert chosen.endswith(
        "member 1 is at least as good on every objective (accuracy, latency_ms, peak_memory_kb)"
    )
    chosen = json.loads((export_trial(run, 4, tmp_path / "b") / "manifest.json").read_text())
    assert "never on it; it is over the run's budget; no member" in chosen["chosen"]


def test_the_manifest_calls_a_roofline_latency_and_the_peak_memory_lower_bounds(tmp_path):
    import json

    from search.export import export_trial

    how = json.loads((export_trial(_mcu_run(tmp_path), 1) / "manifest.json").read_text())
    how = how["how_measured"]
    assert how["latency_ms"].startswith(ROOFLINE) and "a lower bound" in how["latency_ms"]
    assert "without the runtime's scratch buffers" in how["peak_memory_kb"]
    assert "a lower bound" in how["peak_memory_kb"]


def _tiers(run: Path, picks: list) -> None:
    import json

    names = ["tighter (bounds \u00d70.5)", "configured budget", "looser (bounds \u00d72)"]
    tiers = [
        {"name": name, "budget": {"latency_ms": limit}, "trial": pick}
        for name, limit, pick in zip(names, (2.5, 5.0, 10.0), picks, strict=True)
    ]
    members = sum(pick is not None for pick in picks)
    (run / "summary.json").write_text(json.dumps({"tiers": tiers, "pareto_members": members}))


def test_a_tier_without_a_model_names_the_tiers_that_have_one(tmp_path):
    from search.config import ConfigError
    from search.export import recommended_trial

    run = _mcu_run(tmp_path)
    _tiers(run, [None, 1, 1])
    with pytest.raises(ConfigError) as error:
        recommended_trial(run, "tighter")
    message = str(error.value)
    assert message.startswith(f"no model of {run} meets the tighter (bounds \u00d70.5)")
    assert "--tier 'configured budget' gives trial 1; --tier looser gives trial 1" in message
    assert "--tier tighter" not in message


def test_with_no_candidate_trained_no_looser_tier_is_offered(tmp_path):
    import pandas as pd

    from search.config import ConfigError
    from search.export import recommended_trial

    # Every searched candidate over budget (never trained); the baselines trained anyway.
    run = _mcu_run(tmp_path)
    trials = pd.read_csv(run / "trials.csv")
    trials.loc[trials["baseline"].isna(), ["status", "accuracy", "peak_memory_kb"]] = [
        "infeasible",
        None,
        80.0,
    ]
    trials.to_csv(run / "trials.csv", index=False)
    _tiers(run, [None, None, None])
    for tier in ("looser", "tighter"):
        with pytest.raises(ConfigError) as error:
            recommended_trial(run, tier)
        message = str(error.value)
        assert "looser tier" not in message and "--tier" not in message
        assert (
            "no candidate of 2 met the budget (lowest seen: peak_memory_kb 80 KB (computed) > 64)"
            in message
        )
        assert "raise budget.* in the config and run under a new --name" in message
        assert "a hand-designed baseline can be exported with --trial N (trial 2: plain_cnn" in (
            message
        )


def test_the_pixel_map_folds_preprocessing_and_input_quantization():
    import numpy as np

    from search.export import pixels_to_input

    preprocessing = {"pixel_scale": 255.0, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
    quant = {"scale": 0.0313, "zero_point": -3, "dtype": "int8"}
    folded = pixels_to_input(preprocessing, quant)
    assert folded["formula"].endswith("-128, 127)")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 500)).astype(np.float64)
    mean, std = (np.array(preprocessing[k])[:, None] for k in ("mean", "std"))
    two_steps = np.clip(np.round((pixels / 255.0 - mean) / std / 0.0313) - 3, -128, 127)
    multiplier, offset = (np.array(folded[k])[:, None] for k in ("multiplier", "offset"))
    one_step = np.clip(np.round(pixels * multiplier + offset), -128, 127)
    assert (one_step == two_steps).mean() > 0.99  # all but float ties at a half
    assert np.abs(one_step - two_steps).max() <= 1


def test_the_golden_file_holds_test_inputs_and_the_files_own_logits(tmp_path):
    import hashlib
    import json
    import shutil

    import numpy as np
    import onnxruntime as ort

    from evaluators.probes import export_candidate
    from search.config import parse_config
    from search.export import export_trial

    run = _run_folder(tmp_path, front=[1])
    config = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
    shutil.copy(config, run / "config.yaml")
    int8 = Candidate(ARCH, CompressionPolicy((StagePolicy(weight_bits=8, activation_bits=8),)))
    export_candidate(int8, (1, 8, 8), 10, run / "models" / "1" / "model.onnx")
    out = export_trial(run, 1, tmp_path / "ship")
    manifest = json.loads((out / "manifest.json").read_text())

    golden = np.load(out / "golden.npz", allow_pickle=False)
    test = parse_config(yaml.safe_load(config.read_text()), str(config)).load_dataset().test
    indices = golden["indices"]
    assert np.array_equal(golden["inputs"], test.images[indices].numpy())
    assert np.array_equal(golden["labels"], test.labels[indices].numpy())
    assert len(set(golden["labels"].tolist())) == 8  # digits has 10 classes: 8 different ones
    for name, file in (("logits", "model.onnx"), ("signed_logits", "model.s8s8.onnx")):
        session = ort.InferenceSession(str(out / file), providers=["CPUExecutionProvider"])
        ran = [session.run(None, {"input": x[None]})[0][0] for x in golden["inputs"]]
        assert np.array_equal(golden[name], np.stack(ran)), name
    assert manifest["golden"]["file"] == "golden.npz"
    assert set(manifest["golden"]["arrays"]) == set(golden.files)
    digest = hashlib.sha256((out / "golden.npz").read_bytes()).hexdigest()
    assert manifest["files"]["golden.npz"] == digest
    assert manifest["onnx"]["opsets"]["ai.onnx"] >= 13 and manifest["onnx"]["ir_version"] > 0

    # Without the run's data there is no golden file, and the manifest says why.
    (run / "config.yaml").unlink()
    out = export_trial(run, 1, tmp_path / "ship")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["golden"]["file"] is None and "did not load here" in manifest["golden"]["why"]
    assert not (out / "golden.npz").exists() and "golden.npz" not in manifest["files"]


def test_golden_images_are_taken_from_each_class_in_turn():
    import torch

    from search.export import golden_indices

    # A split sorted by class, as an image folder's is: the first 8 would all be class 0.
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 10)
    assert golden_indices(labels, 8) == [0, 1, 2, 10, 11, 12, 13, 14]
    assert golden_indices(torch.tensor([1, 1, 0]), 8) == [0, 1, 2]  # fewer than 8: all
    assert golden_indices(torch.tensor([3, 0, 3, 0]), 2) == [0, 1]


def test_counts_read_back_from_a_column_with_blanks_are_whole_numbers(tmp_path):
    import json

    import pandas as pd

    from search.export import export_trial

    run = _run_folder(tmp_path, front=[1])
    trials = pd.read_csv(run / "trials.csv")
    trials["artifact_bytes"] = [None, 53477]  # blank for one trial: pandas reads floats
    trials["epochs"] = [None, 4]
    trials.to_csv(run / "trials.csv", index=False)
    assert pd.read_csv(run / "trials.csv")["artifact_bytes"].dtype == float
    metrics = json.loads((export_trial(run, 1, tmp_path / "s") / "manifest.json").read_text())
    assert metrics["metrics"]["artifact_bytes"] == 53477
    assert isinstance(metrics["metrics"]["artifact_bytes"], int)
    assert isinstance(metrics["metrics"]["epochs"], int)
    assert isinstance(metrics["metrics"]["test_accuracy"], float)
