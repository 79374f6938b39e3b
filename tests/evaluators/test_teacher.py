from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluators import teacher as teacher_module
from evaluators.data import load_dataset
from evaluators.distill import predict_logits
from evaluators.teacher import ResNetTeacher, TeacherConfig, TeacherError, prepare_teacher

CONFIG = TeacherConfig(widths=(16, 32), blocks=(1, 1), epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_teacher_is_trained_once_then_loaded_from_cache(tmp_path, digits, monkeypatch):
    first = prepare_teacher(digits, CONFIG, tmp_path, progress=False)
    assert first.train_logits.shape == (len(digits.train), 10)
    assert 0.5 < first.test_accuracy <= 1.0
    assert (first.cache_dir / "teacher.pt").is_file()
    meta = json.loads((first.cache_dir / "meta.json").read_text())
    assert meta["test_accuracy"] == first.test_accuracy

    def forbidden(*args, **kwargs):
        raise AssertionError("the cached teacher must not be retrained or rerun")

    monkeypatch.setattr(teacher_module, "train", forbidden)
    monkeypatch.setattr(teacher_module, "predict_logits", forbidden)
    second = prepare_teacher(digits, CONFIG, tmp_path, progress=False)
    assert torch.equal(second.train_logits, first.train_logits)
    assert second.test_accuracy == first.test_accuracy


def test_another_config_or_dataset_split_is_another_teacher(tmp_path, digits):
    a = teacher_module.teacher_key(CONFIG, digits)
    b = teacher_module.teacher_key(TeacherConfig(widths=(16, 32), blocks=(1, 1), epochs=3), digits)
    c = teacher_module.teacher_key(CONFIG, load_dataset("digits", seed=1))
    assert len({a, b, c}) == 3


def test_a_users_state_dict_checkpoint_is_used_without_training(tmp_path, digits, monkeypatch):
    model = ResNetTeacher(1, 10, (16, 32), (1, 1))
    path = tmp_path / "mine.pt"
    torch.save(model.state_dict(), path)
    monkeypatch.setattr(teacher_module, "train", lambda *a, **k: pytest.fail("must not train"))
    teacher = prepare_teacher(
        digits,
        TeacherConfig(widths=(16, 32), blocks=(1, 1), checkpoint=str(path)),
        tmp_path / "c",
        progress=False,
    )
    assert torch.allclose(
        teacher.train_logits, predict_logits(model, digits.train.images), atol=1e-5
    )
    assert "loaded from" in teacher.source


def test_an_onnx_teacher_gives_the_same_logits(tmp_path, digits):
    from evaluators.hardware import export_onnx

    model = ResNetTeacher(1, 10, (8,), (1,)).eval()
    path = export_onnx(model, (1, 8, 8), tmp_path / "teacher.onnx")
    teacher = prepare_teacher(
        digits, TeacherConfig(checkpoint=str(path)), tmp_path / "c", progress=False
    )
    assert torch.allclose(
        teacher.train_logits, predict_logits(model, digits.train.images), atol=1e-4
    )


def test_a_mismatched_checkpoint_says_how_to_fix_it(tmp_path, digits):
    path = tmp_path / "other.pt"
    torch.save(ResNetTeacher(1, 10, (8,), (1,)).state_dict(), path)
    with pytest.raises(TeacherError, match=r"teacher\.widths"):
        prepare_teacher(digits, TeacherConfig(checkpoint=str(path)), tmp_path / "c", progress=False)


def _timed_paths(monkeypatch) -> list:
    """Record which file the teacher's latency is measured on, and its graph (the file may
    be a temporary one); the measurement itself is real."""
    import onnx

    from evaluators import hardware

    measure, paths = hardware.measure_onnx_latency, []

    def recording(path, *args, **kwargs):
        paths.append((path, onnx.load(str(path)).graph))
        return measure(path, *args, **kwargs)

    monkeypatch.setattr(hardware, "measure_onnx_latency", recording)
    return paths


def test_a_resnet_teachers_latency_is_measured_like_a_candidates(tmp_path, digits, monkeypatch):
    from evaluators.hardware import Host

    teacher = prepare_teacher(digits, CONFIG, tmp_path, progress=False)
    assert "latency_ms" not in teacher.summary()
    paths = _timed_paths(monkeypatch)
    timed = teacher_module.with_measured_latency(teacher, CONFIG, digits, Host(warmup=2, runs=7))
    assert timed.latency_ms > 0
    assert "median of 7 runs after 2 warm-up" in timed.latency_source
    assert "1 thread(s), batch 1" in timed.latency_source
    assert timed.summary()["latency_ms"] == timed.latency_ms
    assert timed.train_logits is teacher.train_logits
    # The file timed is the configured architecture at batch 1, not some other network.
    ((_, graph),) = paths
    convs = sum(
        isinstance(m, torch.nn.Conv2d) for m in ResNetTeacher(1, 10, (16, 32), (1, 1)).modules()
    )
    assert sum(node.op_type == "Conv" for node in graph.node) == convs
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 1, 8, 8]


def test_an_onnx_teacher_is_timed_from_its_own_file_whatever_its_input_name(
    tmp_path, digits, monkeypatch
):
    import onnx

    from evaluators.hardware import Host, export_onnx

    path = export_onnx(ResNetTeacher(1, 10, (8,), (1,)).eval(), (1, 8, 8), tmp_path / "t.onnx")
    proto = onnx.load(str(path))
    old = proto.graph.input[0].name
    proto.graph.input[0].name = "pixels"
    for node in proto.graph.node:
        node.input[:] = ["pixels" if name == old else name for name in node.input]
    onnx.save(proto, str(path))
    config = TeacherConfig(checkpoint=str(path))
    teacher = prepare_teacher(digits, config, tmp_path / "c", progress=False)
    paths = _timed_paths(monkeypatch)
    timed = teacher_module.with_measured_latency(teacher, config, digits, Host(warmup=1, runs=3))
    assert [timed_path for timed_path, _ in paths] == [path]
    assert timed.latency_ms > 0 and timed.latency_source.endswith("on its ONNX file")

    # A symbolic batch is timed at batch 1, like the candidates' fixed-shape files.
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(proto, str(dynamic))
    config = TeacherConfig(checkpoint=str(dynamic))
    timed = teacher_module.with_measured_latency(teacher, config, digits, Host(warmup=1, runs=3))
    assert timed.latency_ms > 0 and "batch fixed to 1" in timed.latency_source
    timed_path, graph = paths[-1]
    assert timed_path != dynamic
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 1, 8, 8]


def test_a_teacher_that_cannot_run_at_batch_one_has_no_latency_and_no_error(
    tmp_path, digits, caplog
):
    from onnx import TensorProto, helper, numpy_helper, save

    from evaluators.hardware import Host

    # Reshape to a hard-coded [8, 64]: this network only runs on batches of 8.
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["y"]),
        ],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 10])],
        [
            numpy_helper.from_array(np.array([8, 64], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.zeros((64, 10), dtype=np.float32), "w"),
        ],
    )
    path = tmp_path / "batch8.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    teacher = prepare_teacher(digits, CONFIG, tmp_path, progress=False)
    config = TeacherConfig(checkpoint=str(path))
    timed = teacher_module.with_measured_latency(teacher, config, digits, Host(warmup=1, runs=3))
    assert timed.latency_ms is None and "latency_ms" not in timed.summary()
    assert "latency not measured" in caplog.text and "claims no speed-up" in caplog.text


def test_a_mismatched_state_dict_names_what_differs(tmp_path, digits):
    path = tmp_path / "other.pt"
    torch.save(ResNetTeacher(1, 5, (8,), (1,)).state_dict(), path)
    config = TeacherConfig(widths=(8,), blocks=(1,), checkpoint=str(path))
    with pytest.raises(TeacherError) as error:
        prepare_teacher(digits, config, tmp_path / "c", progress=False)
    message = str(error.value)
    assert "fc.weight is (5, 8) in the file, (10, 8) here" in message
    assert "\n" not in message

    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    config = TeacherConfig(checkpoint=str(garbage))
    with pytest.raises(TeacherError, match=r"torch\.save\(model\.state_dict\(\), path\)") as error:
        prepare_teacher(digits, config, tmp_path / "c", progress=False)
    assert "weights_only=False" not in str(error.value) and "\n" not in str(error.value)


def test_an_onnx_teacher_that_does_not_fit_the_dataset_is_refused_in_one_line(tmp_path, digits):
    from evaluators.hardware import export_onnx

    def refused(path) -> str:
        with pytest.raises(TeacherError) as error:
            prepare_teacher(
                digits, TeacherConfig(checkpoint=str(path)), tmp_path / "c", progress=False
            )
        assert "\n" not in str(error.value)
        return str(error.value)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    assert "is not an ONNX model ONNX Runtime can load" in refused(garbage)

    five = export_onnx(ResNetTeacher(1, 5, (8,), (1,)).eval(), (1, 8, 8), tmp_path / "five.onnx")
    assert "gives outputs of shape [5] per image, but digits has 10 classes" in refused(five)

    wide = export_onnx(ResNetTeacher(3, 10, (8,), (1,)).eval(), (3, 32, 32), tmp_path / "w.onnx")
    assert "takes input [1, 3, 32, 32], but this dataset's images are [1, 8, 8]" in refused(wide)


@pytest.mark.parametrize(
    ("accuracy", "classes", "warned"),
    [(0.12, 10, True), (0.30, 10, True), (0.40, 10, False), (0.60, 2, True), (0.70, 2, False)],
)
def test_a_teacher_near_chance_is_warned_about(accuracy, classes, warned, caplog):
    with caplog.at_level("WARNING"):
        assert teacher_module.warn_if_near_chance(accuracy, classes) is warned
    assert ("close to chance" in caplog.text) is warned
