"""``paretonas probe`` and ``paretonas calibrate``: give a device a fitted latency predictor.

- ``calibrate --device host``: time probe kernels and probe models on this machine with
  ONNX Runtime (within ``--budget-seconds``), fit, cache under
  ``results/devices/host/predictor/``.
- ``probe --device NAME --out DIR``: write probe ONNX models and a runner that needs only
  onnxruntime and numpy, to run on a device this machine cannot reach.
- ``calibrate --device NAME --measurements FILE.csv``: fit from what the runner measured
  there (the kit's ``probes.csv`` is found next to the measurements, or pass ``--kit``).

Every later search for that device, in that results folder, then uses the predictor
instead of the roofline (the search logs which, ``paretonas devices`` lists it). So a fit
is refused rather than cached when it could not be trusted: measurements leaving a kernel
family the device's networks run with fewer than ``MIN_LAYERS_PER_FAMILY`` layer probes,
or a predictor off by more than ``MAX_HELD_OUT_ERROR`` on probes it was not fitted on
(``evaluators.predictor.fit_from_measurements``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from evaluators.devices import DeviceError, get_device
from evaluators.predictor import LatencyPredictor, predictor_dir
from search.config import ConfigError


def probe(
    device_name: str, out: str | Path, *, config: str | Path | None = None, progress: bool = True
) -> Path:
    """Write the probe kit for ``device_name``: kernels and networks of the precisions it
    executes (no fp32 probe for an int8-only microcontroller), from the space it allows,
    at the input of ``config``'s dataset when a run config is given (else 1x28x28, 10
    classes, the default space)."""
    from evaluators.devices import restrict_space
    from evaluators.probes import write_probe_kit
    from spaces.params import Choice
    from spaces.space import SearchSpace

    run = None
    if config is not None:
        from search.config import load_config

        run = load_config(config)  # first: its plugins may register the device
    device = get_device(device_name)
    input_shape, num_classes = (1, 28, 28), 10
    if run is not None:
        if get_device(run.device.name).name != device.name:
            raise ConfigError(
                f"--config {config} is for device {run.device.name}, not {device.name}; "
                "give a config of this device, or no --config"
            )
        space = run.search_space()
        dataset = run.load_dataset()
        input_shape, num_classes = dataset.input_shape, dataset.num_classes
    else:
        # The default architectures, with every bit-width the device executes.
        space = restrict_space(
            dataclasses.replace(
                SearchSpace(),
                weight_bits=Choice(tuple(device.executes.weight_bits)),
                activation_bits=Choice(tuple(device.executes.activation_bits)),
            ),
            device,
        )
    native = device.executes.native_bits
    precisions = tuple(
        name
        for name, present in (("fp32", 32 in native), ("int8", any(b <= 8 for b in native)))
        if present
    )
    if not precisions:
        raise DeviceError(
            f"device {device.name} has kernels only for {list(native)}-bit values; the probe "
            "kit times fp32 and int8 kernels: give executes.native_bits 32 or a width <= 8"
        )
    # The kit's int8 probes store weights as the device's kernels want them: int8 unless
    # it is an x86 CPU without VNNI (only the host is known to be one).
    unsigned = None if device.kind == "host" else False
    return write_probe_kit(
        out,
        device=device.name,
        input_shape=input_shape,
        num_classes=num_classes,
        space=space,
        unsigned_weights=unsigned,
        progress=progress,
        precisions=precisions,
    )


def calibrate(
    device_name: str,
    *,
    measurements: str | Path | None = None,
    kit: str | Path | None = None,
    results: str | Path = "results",
    budget_seconds: float = 900,
    threads: int = 1,
    progress: bool = True,
) -> tuple[LatencyPredictor, Path]:
    from evaluators.predictor import calibrate_host, fit_from_measurements

    device = get_device(device_name)
    out = predictor_dir(device.name, results)
    if measurements is None:
        if device.kind != "host":
            raise DeviceError(
                f"device {device.name} cannot be measured from here; write a probe kit with "
                f"`paretonas probe --device {device.name} --out DIR`, time its probes on the "
                "device (DIR/README.txt says how), then pass --measurements "
                "DIR/measurements.csv"
            )
        predictor = calibrate_host(out, budget_seconds, threads=threads, progress=progress)
        return predictor, out
    measurements = Path(measurements)
    if measurements.is_dir():
        raise ConfigError(
            f"--measurements: {measurements} is a folder, give the CSV file (e.g. "
            f"{measurements / 'measurements.csv'})"
        )
    if not measurements.is_file():
        raise ConfigError(f"--measurements: {measurements} does not exist")
    kit_dir = Path(kit) if kit is not None else measurements.parent
    if not (kit_dir / "probes.csv").is_file():
        raise ConfigError(
            f"no probes.csv in {kit_dir}: pass --kit with the folder `paretonas probe` wrote"
        )
    # A kit's probes are the kernels and precisions of its device: another device's fit
    # on them would extrapolate to kernels never timed (kits written before the device
    # was recorded in kit.json are taken as they are).
    made_for = _kit_device(kit_dir)
    if made_for is not None and made_for != device.name:
        raise ConfigError(
            f"the probe kit {kit_dir} was written for device {made_for}, not {device.name}; "
            f"calibrate with --device {made_for}, or write a kit for {device.name} with "
            f"`paretonas probe --device {device.name} --out DIR` and time that one"
        )
    roofline = device if device.latency.source == "roofline" else None
    predictor = fit_from_measurements(
        kit_dir, measurements, device=device.name, save_to=out, roofline=roofline
    )
    return predictor, out


def _kit_device(kit_dir: Path) -> str | None:
    """The device ``kit_dir`` was written for, from its kit.json (None: not recorded)."""
    import json

    try:
        info = json.loads((kit_dir / "kit.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    device = info.get("device") if isinstance(info, dict) else None
    return device if isinstance(device, str) and device else None
