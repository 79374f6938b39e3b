"""A user's mistake at an extension point (a dataset loader, a device file) is one clear
error naming what to fix, said where it can be, and stops only what uses it."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

import evaluators
import evaluators.data as data
from evaluators import devices
from evaluators.data import Dataset, DatasetError, load_dataset, make_dataset, register_dataset
from evaluators.devices import (
    PROFILE_DIR,
    DeviceError,
    describe_devices,
    get_device,
    list_devices,
    load_device_file,
    register_device,
)
from search.cli import main

# --- datasets --------------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(data, "_REGISTRY", dict(data._REGISTRY))


def _stripes(name: str = "stripes", *, val_fraction: float = 0.5, seed: int = 0) -> Dataset:
    images = np.repeat(np.arange(2), 20)[:, None, None, None] * np.ones((1, 1, 4, 4))
    labels = np.repeat(np.arange(2), 20)
    return make_dataset(
        name,
        images,
        labels,
        images[:4],
        labels[:4],
        class_names=("off", "on"),
        source="generated",
        val_fraction=val_fraction,
        seed=seed,
    )


def test_the_dataset_extension_points_are_exported():
    assert evaluators.register_dataset is register_dataset
    assert evaluators.make_dataset is make_dataset


def test_a_loader_with_the_wrong_signature_is_refused_when_registered(registry):
    def load_naive(root, val_fraction, seed):
        return _stripes()

    with pytest.raises(DatasetError) as err:
        register_dataset("naive")(load_naive)
    message = str(err.value)
    assert "\n" not in message
    for part in ("'naive'", "load_naive", "download", "(root, *, download, val_fraction"):
        assert part in message, message
    assert "naive" not in data.dataset_names()


def test_a_loader_that_is_not_a_function_is_refused(registry):
    with pytest.raises(DatasetError, match="decorates a loader function, got a str"):
        register_dataset("text")("not a loader")


def test_loaders_taking_the_call_in_other_shapes_are_accepted(registry):
    @register_dataset("loose")
    def load_loose(root, **options):
        return _stripes("loose", val_fraction=options["val_fraction"], seed=options["seed"])

    def load_with_extra(root, *, download, val_fraction, seed, image_size, flavour):
        return _stripes("partial", val_fraction=val_fraction, seed=seed)

    register_dataset("partial")(functools.partial(load_with_extra, flavour="plain"))
    assert len(load_dataset("loose", val_fraction=0.5).val) == 20
    assert load_dataset("partial", val_fraction=0.5).name == "partial"


def test_a_loader_returning_a_tensor_dataset_is_one_dataset_error(registry):
    @register_dataset("raw")
    def load_raw(root, *, download, val_fraction, seed, image_size):
        return TensorDataset(torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.int64))

    with pytest.raises(DatasetError) as err:
        load_dataset("raw")
    message = str(err.value)
    assert "\n" not in message
    for part in ("'raw'", "load_raw", "returned a TensorDataset", "make_dataset("):
        assert part in message, message


def test_a_loader_that_raises_is_one_dataset_error_at_its_line(registry, tmp_path):
    @register_dataset("unreadable")
    def load_unreadable(root, *, download, val_fraction, seed, image_size):
        return np.load(tmp_path / "missing.npy")  # numpy raises; the line is the loader's

    with pytest.raises(DatasetError) as err:
        load_dataset("unreadable")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("dataset 'unreadable': its loader ")
    assert "failed: FileNotFoundError: " in message
    assert f"({__file__}, line " in message and "raise evaluators.DatasetError" in message


# --- devices ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_user_devices(monkeypatch):
    monkeypatch.delenv(devices.ENV_VAR, raising=False)
    monkeypatch.setattr(devices, "_REGISTERED", {})


def _device_data(name: str = "mine", **executes) -> dict:
    """A valid user device (the built-in bitserial's numbers) under ``name``."""
    data = yaml.safe_load((PROFILE_DIR / "bitserial.yaml").read_text())
    data["name"] = name
    data["executes"].update(executes)
    return data


def _write(folder, data: dict, stem: str | None = None):
    path = folder / f"{stem or data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_device_bits_no_candidate_can_use_name_the_file_and_field(tmp_path):
    # Bit Fusion multiplies 4-bit activations, but a candidate's are 8, 16 or 32: listed,
    # the search would advise w8a4 and then refuse it.
    path = _write(tmp_path, _device_data(activation_bits=[4, 8]))
    with pytest.raises(DeviceError) as err:
        load_device_file(path)
    message = str(err.value)
    assert "\n" not in message
    for part in (str(path), "executes.activation_bits: [4]", "[8, 16, 32]", "native_bits"):
        assert part in message, message


def test_a_broken_user_file_stops_only_its_own_device(tmp_path, monkeypatch):
    _write(tmp_path, _device_data("good"))
    broken = _write(tmp_path, _device_data("broken", activation_bits=[4]))
    (tmp_path / "garbled.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))

    assert get_device("host").name == "host"
    assert get_device("good").name == "good"
    assert {"host", "good"} <= set(list_devices())
    assert "broken" not in list_devices()
    with pytest.raises(DeviceError) as err:
        get_device("broken")
    assert str(err.value).startswith(f"{broken}: executes.activation_bits: [4]")
    with pytest.raises(DeviceError, match="not valid YAML"):
        get_device("garbled")
    with pytest.raises(DeviceError, match="already known"):
        register_device(get_device("good").model_copy(update={"name": "broken"}))


def test_a_broken_file_is_found_by_the_name_it_gives_its_device(tmp_path, monkeypatch):
    _write(tmp_path, _device_data("board-three", activation_bits=[4]), stem="board3")
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))
    with pytest.raises(DeviceError, match=r"board3\.yaml: executes\.activation_bits: \[4\]"):
        get_device("board-three")


def test_a_copy_of_a_built_in_file_not_yet_renamed_says_to_rename_the_copy(tmp_path, monkeypatch):
    # `paretonas devices --help` says to copy a built-in file to start. Its numbers may be
    # edited already: the built-in is not taken in its place without a word.
    import shutil

    shutil.copy(devices.PROFILE_DIR / "cortex-m7.yaml", tmp_path / "cortex-m7.yaml")
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))
    said = "'cortex-m7' is a built-in device's name; give your copy its own"
    with pytest.raises(DeviceError, match=said):
        get_device("cortex-m7")
    assert said in describe_devices(tmp_path / "results")
    assert get_device("host").name == "host"


def test_paretonas_devices_lists_a_broken_file_with_its_error(tmp_path, monkeypatch, capsys):
    broken = _write(tmp_path, _device_data("broken", activation_bits=[4]))
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))
    table = describe_devices(tmp_path / "results")
    lines = table.splitlines()
    assert lines[0].startswith("device")
    assert any(line.startswith("host ") for line in lines)
    assert f"  broken: {broken}: executes.activation_bits: [4]" in table

    assert main(["devices", "--results", str(tmp_path / "results")]) == 0
    assert f"broken: {broken}: executes.activation_bits" in capsys.readouterr().out


def test_a_name_two_user_files_define_is_an_error_only_when_used(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _write(first, _device_data("twin"))
    _write(second, _device_data("twin"))
    monkeypatch.setenv(devices.ENV_VAR, os.pathsep.join([str(first), str(second)]))
    assert get_device("host").name == "host"
    with pytest.raises(DeviceError, match="already defined by"):
        get_device("twin")
