"""How a run knows a candidate's latency on its device: measured here, or predicted.

- ``host``: measured with ONNX Runtime on the deployable file (exact, ~0.1-0.3 s, before
  training, since latency does not depend on weight values). When a host predictor has
  been calibrated (``paretonas calibrate --device host``), its prediction is recorded
  beside the measurement, so the report can show predicted vs measured.
- any other device: predicted, by a kernel-level predictor fitted on measurements from
  the device (``paretonas probe`` then ``paretonas calibrate --measurements``), cached
  under ``results/devices/<name>/predictor/``; without one, by the roofline of the
  device's public numbers (MACs at its rate per bit-width, bytes at its bandwidth).
  Either way the figure is labelled as predicted, and by what.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from evaluators.cost import held_candidate
from evaluators.devices import Device, DeviceError
from evaluators.layer_features import layer_features
from evaluators.predictor import (
    LatencyPrediction,
    load_predictor,
    predictor_dir,
    roofline_latency_ms,
)

if TYPE_CHECKING:
    from evaluators.predictor import LatencyPredictor
    from spaces.candidate import Candidate


@dataclass(frozen=True)
class LatencyOracle:
    device: Device
    predictor: LatencyPredictor | None = None
    # Which fitted predictor (a digest of what it was fitted on), None for the roofline.
    predictor_digest: str | None = None

    @classmethod
    def for_device(cls, device: Device, results: str | Path = "results") -> LatencyOracle:
        folder = predictor_dir(device.name, results)
        predictor = load_predictor(folder) if (folder / "meta.json").is_file() else None
        digest = None
        if predictor is not None:
            content = hashlib.sha256()
            for name in ("probes.csv", "measurements.csv"):
                content.update((folder / name).read_bytes())
            digest = content.hexdigest()[:16]
        if predictor is None and device.latency.source == "predicted":
            raise DeviceError(
                f"device {device.name} predicts latency from measurements, but "
                f"{folder} holds no fitted predictor; write a probe kit with `paretonas probe "
                f"--device {device.name} --out DIR`, time its probes on the device "
                "(DIR/README.txt says how), then run `paretonas calibrate --device "
                f"{device.name} --measurements DIR/measurements.csv --results {results}`"
            )
        return cls(device, predictor, digest)

    @property
    def model(self) -> str:
        """What a predicted latency of this run comes from, as one line: a run's trials
        must all be costed by the same model, or its front compares two."""
        if self.predictor is None:
            # The numbers themselves, digested: a device file edited since is another model.
            numbers = hashlib.sha256(self.device.latency.model_dump_json().encode())
            return f"the roofline of {self.device.name}'s public numbers {numbers.hexdigest()[:8]}"
        return f"{self.device.name}'s fitted predictor {self.predictor_digest}"

    @property
    def measures(self) -> bool:
        """Whether latency is measured here (the host) rather than predicted."""
        return self.device.latency.source == "measured"

    def predict(
        self,
        candidate: Candidate,
        input_shape: tuple[int, int, int],
        num_classes: int,
        align: int = 4,
    ) -> LatencyPrediction | None:
        """The predicted latency of ``candidate`` as deployed, or None where the device is
        measured and has no calibrated predictor."""
        if self.predictor is not None:
            return self.predictor.predict_candidate(candidate, input_shape, num_classes, align)
        if self.device.latency.source != "roofline":
            return None
        # Bytes moved at the widths the device holds each stage at, as memory is computed.
        held = held_candidate(candidate, self.device)
        rows = layer_features(held, input_shape, num_classes, align=align)
        roofline = roofline_latency_ms(rows, self.device.latency, self.device.mac_rate)
        return replace(
            roofline, source=f"predicted (roofline of {self.device.name}'s public numbers)"
        )
