from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from search.config import ConfigError, RunConfig, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_configs_are_valid():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config.search_space().suggest  # renders to a space


def test_resolved_config_round_trips_through_yaml():
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    again = parse_config(yaml.safe_load(config.to_yaml()))
    assert again == config


def test_precisions_are_drawn_in_pairs_and_a_saved_config_reads_back():
    config = parse_config({"space": {"precisions": ["W8A8", "w32a32", "w8a8"]}})
    assert config.space.precisions == ["w8a8", "w32a32"]
    # weight_bits and activation_bits say the widths its pairs use, and may say so again.
    assert config.space.weight_bits == [8, 32] and config.space.activation_bits == [8, 32]
    assert parse_config(yaml.safe_load(config.to_yaml())) == config
    again = {"precisions": ["w8a8"], "weight_bits": [8], "activation_bits": [8]}
    assert parse_config({"space": again}).space.precisions == ["w8a8"]
    assert config.search_space().precision.values == ("w8a8", "w32a32")
    with pytest.raises(ConfigError, match="activation_bits \\[32\\] would be ignored"):
        parse_config({"space": {"precisions": ["w8a8"], "activation_bits": [32]}})


def test_overrides_replace_top_level_settings():
    config = load_config(ROOT / "configs" / "quickstart.yaml", name="other", trials=None)
    assert config.name == "other"
    assert config.trials == 8


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"budget": {"latncy_ms": 2}}, "budget.latncy_ms"),
        ({"dataset": {"name": "mnist-1d"}}, "dataset.name"),
        ({"space": {"weight_bits": [3]}}, "space.weight_bits"),
        ({"budget": {"latency_ms": -1}}, "budget.latency_ms"),
        ({"objectives": ["speed"]}, "objectives"),
        ({"space": {"width": [18], "groups": [4]}}, "space"),
        ({"teacher": {"widths": [8, 16], "blocks": [1]}}, "teacher"),
        ({"sampler": "cmaes"}, "sampler"),
        ({"training": {"early_stopping_min_gain": 1.5}}, "training.early_stopping_min_gain"),
        ({"training": {"early_stopping_feedback": "best"}}, "training.early_stopping_feedback"),
        ({"execution": {"backend": "ray", "workers": 2}}, "execution.ray.concurrent"),
        ({"space": {"precisions": ["int8"]}}, "space.precisions"),
        ({"space": {"precisions": ["w8a8"], "weight_bits": [4, 8]}}, "space"),
    ],
)
def test_mistakes_name_the_field(data, field):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert field in message
    assert "\n" not in message


def test_an_unknown_key_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed here: latency_ms, peak_memory_kb, flash_kb"):
        parse_config({"budget": {"latncy_ms": 2}})


def test_a_misspelt_required_key_is_named_not_the_missing_one():
    # tiers.0.name is missing too; the misspelt key is what to fix, in its own section.
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'tiers.0.nam' \(did you mean name\?\); allowed here: latency_ms, .*, name$",
    ):
        parse_config({"tiers": [{"nam": "phone", "latency_ms": 2}]})


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        ({"budget": {"latncy_ms": 2}}, "(did you mean latency_ms?)"),
        ({"latency_ms": 2}, "(did you mean budget.latency_ms or tiers[].latency_ms?)"),
        ({"budget": {"trials": 5}}, "(did you mean trials (top level)?)"),
        ({"budget": {"epochs": 2}}, "(did you mean teacher.epochs or training.epochs?)"),
        ({"budget": {"colour": 2}}, "'budget.colour'; allowed here"),  # no guess
    ],
)
def test_an_unknown_key_says_which_key_was_meant(data, hint):
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert hint in str(error.value)


def test_defaults_make_a_valid_config():
    assert isinstance(parse_config({}), RunConfig)


BAD_CONFIGS = {
    "unknown key": ("dataset:\n  name: digits\n  colour: red\n", "dataset.colour"),
    "unknown dataset": ("dataset:\n  name: imagenet-22k\n", "dataset.name"),
    "bit-width": ("space:\n  weight_bits: [8, 6]\n", "space.weight_bits"),
    "negative budget": ("budget:\n  latency_ms: -0.5\n", "budget.latency_ms"),
    "not yaml": ("budget: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--config",
            str(path),
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists(), "nothing is started for a bad config"


def test_cli_reports_a_missing_config_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "search.cli", "search", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def _cli_search(tmp_path, config_text):
    path = tmp_path / "run.yaml"
    path.write_text(config_text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--config",
            str(path),
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_a_missing_dataset_is_one_line_that_says_how_to_fix_it(tmp_path):
    done = _cli_search(
        tmp_path, f"dataset:\n  name: imagefolder\n  root: {tmp_path / 'no-such-folder'}\n"
    )
    assert done.returncode == 2, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("paretonas: error:")]
    assert len(error) == 1 and "no-such-folder" in error[0]
    assert "Traceback" not in done.stderr


def test_a_run_whose_first_start_failed_takes_the_corrected_config(tmp_path):
    # The error said to fix the path; the fix must not be refused as "a different config"
    # of the same run, which has recorded nothing.
    _cli_search(tmp_path, f"dataset:\n  name: imagefolder\n  root: {tmp_path / 'wrong'}\n")
    done = _cli_search(tmp_path, f"dataset:\n  name: imagefolder\n  root: {tmp_path / 'fixed'}\n")
    assert "different config" not in done.stderr
    assert "fixed" in done.stderr and done.returncode == 2  # the corrected path is tried
    saved = next(tmp_path.rglob("config.yaml")).read_text()
    assert "fixed" in saved and "wrong" not in saved


@pytest.mark.parametrize(
    "url, secrets",
    [
        ("postgresql://paretonas:s3cret-pw@127.0.0.1:1/nas", ["s3cret-pw"]),
        # Unescaped ':' and '@' in the password: the URL splits in the wrong place and the
        # driver's message quotes a piece of the password as a port.
        ("postgresql://paretonas:pa@ss:w0rd-x@127.0.0.1:1/nas", ["w0rd-x", "pa@ss"]),
    ],
)
def test_a_broken_storage_url_is_reported_without_its_password(tmp_path, url, secrets):
    done = _cli_search(tmp_path, f"storage: {url}\n")
    assert done.returncode == 2, done.stderr
    assert "cannot open storage" in done.stderr
    saved = [f.read_text() for f in tmp_path.rglob("config.yaml")]
    assert saved, "the run folder keeps its config"
    for secret in secrets:
        assert secret not in done.stderr + done.stdout
        assert not any(secret in text for text in saved)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "teachers").exists(), "no teacher is trained before the storage opens"


def test_named_tiers_are_validated_and_reach_run_json_settings():
    from search.config import parse_config

    config = parse_config({"tiers": [{"name": "phone", "latency_ms": 2.0}]})
    assert config.tiers[0].name == "phone" and config.tiers[0].latency_ms == 2.0
    with pytest.raises(ConfigError, match=r"tiers\.0\.name"):
        parse_config({"tiers": [{"latency_ms": 2.0}]})
    with pytest.raises(ConfigError, match=r"tiers\.0\.latency_ms"):
        parse_config({"tiers": [{"name": "x", "latency_ms": -1}]})


def test_version_and_each_commands_help_say_what_it_does(capsys):
    from importlib import metadata

    from search.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"paretonas {metadata.version('paretonas')}"
    expected = {
        "search": "Exit code 2",
        "worker": "config comes from the storage",
        "report": "from a run's files alone",
        "baselines": "hand-designed networks",
        "export": "manifest.json",
        "probe": "probe kit",
        "calibrate": "latency predictor",
        "devices": "PARETONAS_DEVICES",
    }
    for command, words in expected.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert words in " ".join(capsys.readouterr().out.split()), command


def test_a_budget_beyond_the_device_is_said_and_held_to_the_device():
    data = {
        "device": {"name": "cortex-m7"},
        "space": {"weight_bits": [8], "activation_bits": [8]},
        "budget": {"flash_kb": 4096, "peak_memory_kb": 100},
    }
    config = parse_config(data)
    (note,) = config.budget_beyond_device()
    assert note.startswith("budget.flash_kb 4096 is more than cortex-m7 has (1024 KB of flash)")
    assert config.budget_value().flash_kb == 1024 and config.budget_value().peak_memory_kb == 100
    assert parse_config({**data, "budget": {"flash_kb": 512}}).budget_beyond_device() == []


def test_pruned_counts_align_to_the_device_too():
    def align(device: str, bits: list[int], compression_align: int = 4) -> int:
        config = parse_config(
            {
                "device": {"name": device},
                "space": {"weight_bits": bits, "activation_bits": bits, "width": [16, 32],
                          "stem_width": [16]},
                "compression": {"align": compression_align},
            }
        )  # fmt: skip
        return config.compression_config().align

    assert align("host", [32]) == 4 and align("cortex-m7", [8]) == 4
    assert align("host", [32], compression_align=6) == 6
    assert align("cortex-m7", [8], compression_align=6) == 12  # multiples of 6 and of 4
    assert align("bitserial", [8]) == 16


def test_a_device_may_be_named_by_its_name_alone():
    config = parse_config(
        {"device": "cortex-m7", "space": {"weight_bits": [8], "activation_bits": [8]}}
    )
    assert config.device.name == "cortex-m7"
