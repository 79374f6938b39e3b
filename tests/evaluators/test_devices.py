from __future__ import annotations

import os

import pytest
import yaml

from evaluators import devices
from evaluators.devices import (
    PROFILE_DIR,
    Device,
    DeviceError,
    get_device,
    list_devices,
    load_device_file,
    register_device,
    restrict_space,
)
from spaces import Choice, SearchSpace

BUILT_INS = {"host", "cortex-m7", "cortex-a72", "bitserial"}


def mine(**changes) -> dict:
    """A valid user device as plain YAML data; ``changes`` replace top-level fields."""
    data = {
        "name": "mine",
        "description": "a board on my desk",
        "kind": "mcu",
        "executes": {
            "ops": ["conv", "depthwise", "linear", "avgpool", "add"],
            "weight_bits": [4, 8],
            "activation_bits": [8],
            "native_bits": [8],
            "channel_align": 8,
        },
        "memory": {"sram_kb": 256, "flash_kb": 2048},
        "latency": {
            "source": "roofline",
            "macs_per_second": {8: 1.0e8},
            "bytes_per_second": 4.0e8,
            "overhead_ms": 0.2,
        },
        "modeled": True,
        "sources": ["my own datasheet reading"],
    }
    data.update(changes)
    return data


def write(folder, data, name: str = "mine"):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def no_user_devices(monkeypatch):
    monkeypatch.delenv(devices.ENV_VAR, raising=False)
    monkeypatch.setattr(devices, "_REGISTERED", {})


def assert_one_line(err: DeviceError, *parts: str) -> None:
    message = str(err)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_built_ins_load_and_validate():
    assert set(list_devices()) >= BUILT_INS
    for name in BUILT_INS:
        device = get_device(name)
        assert isinstance(device, Device)
        assert device.name == name
        assert load_device_file(PROFILE_DIR / f"{name}.yaml") == device


def test_modeled_devices_cite_their_sources():
    for name in BUILT_INS - {"host"}:
        device = get_device(name)
        assert device.modeled
        assert device.latency.source == "roofline"
        assert device.sources and all(s.strip() for s in device.sources)
        assert device.latency.macs_per_second and device.latency.bytes_per_second


def test_host_latency_is_measured():
    host = get_device("host")
    assert host.kind == "host"
    assert host.latency.source == "measured"
    assert not host.modeled
    assert host.weight_bits == (2, 4, 8, 16, 32)
    assert host.activation_bits == (8, 16, 32)
    # ORT CPU runs int8 and fp32: 4-bit weights run as int8, 16-bit ones as fp32.
    assert host.executed_bits(4) == 8
    assert host.executed_bits(16) == 32


def test_cortex_m7_is_an_int8_mcu_with_mcunet_memory():
    m7 = get_device("cortex-m7")
    assert (m7.weight_bits, m7.activation_bits) == ((8,), (8,))
    assert (m7.memory.sram_kb, m7.memory.flash_kb) == (320, 1024)
    assert any("MCUNet" in s for s in m7.sources)


def test_mac_rate_follows_the_scaling_rule():
    bitserial = get_device("bitserial")
    at_8x8 = bitserial.mac_rate(8, 8)
    assert bitserial.mac_rate(2, 8) == pytest.approx(4 * at_8x8)
    assert bitserial.mac_rate(4, 4) == pytest.approx(4 * at_8x8)
    assert bitserial.mac_rate(2, 2) == pytest.approx(16 * at_8x8)
    a72 = get_device("cortex-a72")
    rates = a72.latency.macs_per_second
    assert a72.mac_rate(8, 8) == rates[8]
    assert a72.mac_rate(8, 32) == rates[32]
    with pytest.raises(DeviceError, match="measured"):
        get_device("host").mac_rate(8, 8)


def test_user_file_loads_by_path(tmp_path):
    path = write(tmp_path, mine())
    assert get_device(path).name == "mine"
    assert get_device(str(path)) == load_device_file(path)
    assert "mine" not in list_devices()


def test_user_folders_come_from_the_environment(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write(first, mine())
    write(second, mine(name="other"), name="other")
    monkeypatch.setenv(devices.ENV_VAR, os.pathsep.join([str(first), str(second)]))
    assert {"mine", "other"} | BUILT_INS <= set(list_devices())
    assert get_device("mine").memory.sram_kb == 256
    assert get_device("other").name == "other"


def test_a_user_file_may_not_shadow_a_built_in(tmp_path, monkeypatch):
    write(tmp_path, mine(name="host"), name="host")
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))
    with pytest.raises(DeviceError) as err:
        get_device("host")
    assert_one_line(err.value, "host.yaml", "is a built-in device's name")


def test_a_missing_user_folder_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DeviceError, match="not a folder"):
        list_devices()


def test_missing_field_names_the_file_and_the_field(tmp_path):
    data = mine()
    del data["latency"]["source"]
    path = write(tmp_path, data)
    with pytest.raises(DeviceError) as err:
        load_device_file(path)
    assert_one_line(err.value, str(path), "missing field latency.source")


def test_wrong_type_names_the_file_the_field_and_the_value(tmp_path):
    data = mine()
    data["memory"]["sram_kb"] = "lots"
    path = write(tmp_path, data)
    with pytest.raises(DeviceError) as err:
        load_device_file(path)
    assert_one_line(err.value, f"{path}: memory.sram_kb: must be a number (got 'lots')")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"memory": {"sram_kb": 256, "flash_kb": 2048, "sram": 1}}, "unknown field memory.sram"),
        # A typo: memory.sram_kb is missing too, but the misspelt key is what to fix.
        ({"memory": {"sram_kbb": 256, "flash_kb": 2048}}, "unknown field memory.sram_kbb"),
        ({"kind": "phone"}, "kind: must be 'host', 'mcu', 'mobile' or 'accelerator'"),
        ({"modeled": False}, "modeled: must be true for a roofline device"),
        ({"sources": []}, "sources: a modeled device must list"),
        ({"name": "Mine!"}, "name: must be lower-case"),
        ({"name": "other"}, "name: must match the file name 'mine'"),
    ],
)
def test_invalid_fields_are_named(tmp_path, change, expected):
    path = write(tmp_path, mine(**change))
    with pytest.raises(DeviceError) as err:
        load_device_file(path)
    assert_one_line(err.value, str(path), expected)


def test_a_typo_is_said_once_and_a_second_mistake_is_said_too(tmp_path):
    typo = mine(memory={"sram_KB": 256, "flash_kb": 2048})
    with pytest.raises(DeviceError) as err:
        load_device_file(write(tmp_path, typo))
    assert str(err.value).endswith("unknown field memory.sram_KB (known: sram_kb, flash_kb)")
    typo["kind"] = "phone"
    with pytest.raises(DeviceError) as err:
        load_device_file(write(tmp_path, typo))
    assert_one_line(err.value, "memory.sram_KB", "; also kind: must be 'host'")
    assert "more" not in str(err.value)


def test_a_device_file_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeviceError) as err:
        load_device_file("boards/none.yaml")
    assert_one_line(err.value, f"No such file or directory, relative to {tmp_path}")


def test_nested_rule_violations_name_the_nested_field(tmp_path):
    data = mine()
    data["executes"]["weight_bits"] = [3, 8]
    with pytest.raises(DeviceError) as err:
        load_device_file(write(tmp_path, data))
    assert_one_line(err.value, "executes.weight_bits: bit-widths must be among", "(got [3, 8])")

    data = mine()
    data["latency"]["macs_per_second"] = {8: 1.0e8, 32: 1.0e7}
    with pytest.raises(DeviceError) as err:
        load_device_file(write(tmp_path, data))
    assert_one_line(err.value, "latency.macs_per_second: bit-widths [32] are not among")

    with pytest.raises(DeviceError) as err:
        load_device_file(write(tmp_path, mine(latency={"source": "measured"}, modeled=False)))
    assert_one_line(err.value, "latency.source: measured means ONNX Runtime on this machine")


def test_unknown_name_lists_the_known_devices():
    with pytest.raises(DeviceError) as err:
        get_device("pdp-11")
    assert_one_line(err.value, "unknown device 'pdp-11'", "bitserial, cortex-a72, cortex-m7, host")


def test_register_device(tmp_path):
    device = load_device_file(write(tmp_path, mine()))
    register_device(device)
    assert get_device("mine") is device
    with pytest.raises(DeviceError, match="already known"):
        register_device(device)
    faster = device.model_copy(update={"description": "faster"})
    register_device(faster, overwrite=True)
    assert get_device("mine").description == "faster"


def test_restricting_to_an_int8_mcu_never_samples_4_bits(sampled_candidates):
    space = SearchSpace(weight_bits=Choice((4, 8, 32)), activation_bits=Choice((8, 32)))
    restricted = restrict_space(space, get_device("cortex-m7"))
    assert restricted.weight_bits.values == (8,)
    assert restricted.activation_bits.values == (8,)
    assert restricted.kind == space.kind
    for candidate in sampled_candidates(50, space=restricted):
        for stage in candidate.policy.stages:
            assert stage.weight_bits == 8
            assert stage.activation_bits == 8


def test_restriction_keeps_the_space_order_of_what_survives():
    space = SearchSpace(weight_bits=Choice((32, 2, 8, 16)), activation_bits=Choice((32, 8, 16)))
    restricted = restrict_space(space, get_device("cortex-a72"))
    assert restricted.weight_bits.values == (32, 8)
    assert restricted.activation_bits.values == (32, 8)


def test_pairs_drawn_together_are_the_only_pairs_sampled(sampled_candidates):
    space = SearchSpace(precision=Choice(("W8A8", "w32a32", "w8a8")))
    assert space.precision.values == ("w8a8", "w32a32")  # written as genomes write them
    assert space.weight_bits.values == (8, 32) and space.describe()["precision"] == [
        "w8a8",
        "w32a32",
    ]
    pairs = set()
    for candidate in sampled_candidates(60, space=restrict_space(space, get_device("host"))):
        pairs |= {(s.weight_bits, s.activation_bits) for s in candidate.policy.stages}
    assert pairs == {(8, 8), (32, 32)}
    # On an int8-only microcontroller only the int8 pair is left; with none left, one sentence.
    mcu = get_device("cortex-m7")
    assert restrict_space(space, mcu).precision.values == ("w8a8",)
    with pytest.raises(DeviceError) as err:
        restrict_space(SearchSpace(precision=Choice(("w4a8", "w32a32"))), mcu)
    assert_one_line(
        err.value,
        "device cortex-m7 executes weight bits [8] and activation bits [8]; none of "
        "space.precisions ['w4a8', 'w32a32'] is among them: add one such as w8a8",
    )


def test_pairs_a_device_runs_alike_are_found_with_the_pairs_to_draw_instead():
    from evaluators.devices import alike_note, alike_pairs

    host = get_device("host")
    apart = [(8, 8), (8, 32), (32, 8), (32, 32)]
    assert alike_pairs(apart, host) == {"w32a32": ("w8a32", "w32a8", "w32a32")}
    assert alike_pairs([(4, 8), (8, 8)], host) == {}  # 4-bit weights are packed beside int8
    assert alike_pairs(apart, get_device("bitserial")) == {}  # each width its own cost
    space = SearchSpace(weight_bits=Choice((8, 32)), activation_bits=Choice((8, 32)))
    assert alike_note(restrict_space(space, host), host) == (
        "device host runs w8a32 and w32a8 like w32a32, at the same cost: drawn apart, "
        "space.weight_bits [8, 32] and activation_bits [8, 32] spend trials on pairs that "
        "only round more; draw space.precisions: [w8a8, w32a32] instead"
    )
    # Pairs drawn together may still run alike; with no wider pair the widest is kept.
    drawn = SearchSpace(precision=Choice(("w8a8", "w4a16", "w16a16", "w8a32")))
    assert alike_note(drawn, host) == (
        "device host runs w4a16 and w8a32 like w16a16, at the same cost: space.precisions "
        "spends trials on w4a16, w8a32, which only round more; draw space.precisions: "
        "[w8a8, w16a16] instead"
    )
    assert alike_note(SearchSpace(precision=Choice(("w8a8", "w32a32"))), host) is None
    mcu = get_device("cortex-m7")
    assert alike_note(restrict_space(space, mcu), mcu) is None  # int8 only: one pair left


def test_empty_intersection_says_what_to_add():
    space = SearchSpace(weight_bits=Choice((4,)), activation_bits=Choice((8,)))
    with pytest.raises(DeviceError) as err:
        restrict_space(space, get_device("cortex-m7"))
    assert_one_line(
        err.value,
        "device cortex-m7 executes weight bits [8]; the space allows only [4]: "
        "add 8 to space.weight_bits",
    )


def test_block_kinds_need_their_ops(tmp_path):
    device = load_device_file(write(tmp_path, mine()))  # no group_conv, no shuffle
    space = SearchSpace(weight_bits=Choice((8,)), activation_bits=Choice((8,)))
    assert "gconv" not in restrict_space(space, device).kind.values
    only_gconv = SearchSpace(
        kind=Choice(("gconv",)), weight_bits=Choice((8,)), activation_bits=Choice((8,))
    )
    with pytest.raises(DeviceError) as err:
        restrict_space(only_gconv, device)
    assert_one_line(err.value, "gconv needs ['group_conv', 'shuffle']", "space.kind")


NO_GROUPS = Choice(("mbconv", "dsconv", "conv"))  # widths need not split into gconv groups


def test_widths_round_up_to_the_devices_channel_alignment(caplog, sampled_candidates):
    space = SearchSpace(
        kind=NO_GROUPS,
        stem_width=Choice((6, 8)),
        width=Choice((6, 18, 30, 32)),
        weight_bits=Choice((8,)),
        activation_bits=Choice((8,)),
    )
    with caplog.at_level("WARNING", logger="evaluators.devices"):
        restricted = restrict_space(space, get_device("cortex-m7"))  # channel_align 4
        restrict_space(space, get_device("cortex-m7"))  # said once per process
    assert restricted.stem_width.values == (8,)
    assert restricted.width.values == (8, 20, 32)  # in order, 30 and 32 become one
    said = [r.getMessage() for r in caplog.records if "channel_align" in r.getMessage()]
    assert said == [
        "device cortex-m7 runs channel counts in multiples of 4 (executes.channel_align): "
        "stem widths [6, 8] and widths [6, 18, 30, 32] are searched as [8] and [8, 20, 32]"
    ]
    for candidate in sampled_candidates(30, space=restricted):
        arch = candidate.arch
        assert all(w % 4 == 0 for w in (arch.stem_width, *(s.width for s in arch.stages)))


def test_the_host_and_aligned_spaces_keep_their_widths():
    # The host aligns to 1: its runs' spaces, so their genomes, stay exactly as they were;
    # the built-in spaces' widths are multiples of 4 already.
    odd = SearchSpace(kind=NO_GROUPS, stem_width=Choice((3, 5)), width=Choice((6, 18, 30)))
    assert get_device("host").executes.channel_align == 1
    assert restrict_space(odd, get_device("host")) == odd
    for name in ("cortex-m7", "cortex-a72"):
        space = SearchSpace(weight_bits=Choice((8,)), activation_bits=Choice((8,)))
        restricted = restrict_space(space, get_device(name))
        assert (restricted.stem_width, restricted.width) == (space.stem_width, space.width)
    bitserial = restrict_space(
        SearchSpace(weight_bits=Choice((8,)), activation_bits=Choice((8,))), get_device("bitserial")
    )
    assert bitserial.stem_width.values == (16,) and bitserial.width.values == (16, 32, 48)


def test_a_rounded_width_that_groups_do_not_divide_says_what_to_use():
    space = SearchSpace(
        kind=Choice(("gconv", "conv")),
        groups=Choice((3,)),
        stem_width=Choice((6,)),
        width=Choice((6, 12)),
        weight_bits=Choice((8,)),
        activation_bits=Choice((8,)),
    )
    with pytest.raises(DeviceError) as err:
        restrict_space(space, get_device("cortex-m7"))
    assert_one_line(
        err.value,
        "device cortex-m7 runs channel counts in multiples of 4",
        "widths [8] are not divisible by gconv groups 3",
        "give space.width and space.stem_width multiples of 12",
    )
