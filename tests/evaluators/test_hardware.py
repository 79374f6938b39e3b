from __future__ import annotations

import numpy as np
import onnx
import torch

from evaluators.hardware import Host, export_onnx, measure_onnx_latency, onnx_session
from spaces import build_model, get_candidate


def test_exported_onnx_matches_pytorch(tmp_path):
    model = build_model(get_candidate("tiny_mixed"), 1, 10).eval()
    path = export_onnx(model, (1, 28, 28), tmp_path / "m.onnx")
    onnx.checker.check_model(str(path))
    x = torch.randn(1, 1, 28, 28)
    ours = onnx_session(path).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(ours, model(x).detach().numpy(), atol=1e-5)
    assert not list(tmp_path.glob("*.tmp")), "no temporary file is left behind"


def test_latency_is_a_median_of_the_requested_runs(tmp_path):
    model = build_model(get_candidate("tiny_dsconv"), 1, 10)
    path = export_onnx(model, (1, 28, 28), tmp_path / "m.onnx")
    measurement = measure_onnx_latency(path, (1, 28, 28), threads=1, warmup=2, runs=7)
    assert 0 < measurement.median_ms <= measurement.p90_ms
    assert measurement.runs == 7 and measurement.threads == 1
    assert "median of 7 runs" in measurement.source and "onnxruntime" in measurement.source


def test_bigger_networks_measure_slower():
    host = Host(threads=1, warmup=3, runs=15)
    small = host.measure(build_model(get_candidate("tiny_dsconv"), 3, 10), (3, 32, 32))
    large = host.measure(build_model(get_candidate("tiny_mixed"), 3, 10), (3, 64, 64))
    assert large.median_ms > small.median_ms
