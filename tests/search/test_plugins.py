"""A run's own modules (``plugins`` in its config): imported by every process that reads
the config, before what they register is checked; each failure is one sentence."""

from __future__ import annotations

import json
import sys
import textwrap

import optuna
import pandas as pd
import pytest
import yaml

from search.config import ConfigError, parse_config
from spaces import SearchSpace, blocks
from spaces.candidate import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec
from spaces.params import Choice

BLOCK_MODULE = """
from torch import nn

from spaces import register_block


@register_block("{kind}")
class Fused(nn.Module):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, stage.kernel, stride, stage.kernel // 2)

    def forward(self, x):
        return self.conv(x)
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Writes module ``name`` registering block kind ``kind`` in the folder the test runs
    in; afterwards forgets the kinds, and the path entries and modules the test added
    (import_plugins puts the folder first on sys.path)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    kinds: list[str] = []

    def write(name: str, kind: str, text: str = BLOCK_MODULE) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text.format(kind=kind)))
        kinds.append(kind)

    yield write
    for name in set(sys.modules) - modules:  # the test's own: torch's may not be imported twice
        if str(getattr(sys.modules[name], "__file__", None)).startswith(str(tmp_path)):
            del sys.modules[name]
    for kind in kinds:
        blocks._BLOCKS.pop(kind, None)


def test_a_plugin_registers_the_kinds_the_config_then_draws(plugin):
    plugin("fused_plugin_a", "fused_a")
    config = parse_config(
        {"dataset": {"name": "digits"}, "plugins": ["fused_plugin_a"],
         "space": {"kind": ["fused_a", "conv"]}}
    )  # fmt: skip
    assert config.space.kind == ["fused_a", "conv"]
    # Saved and read back (a worker reads the study's copy): the plugin comes with it.
    assert parse_config(yaml.safe_load(config.to_yaml())).plugins == ["fused_plugin_a"]


def test_a_kind_without_its_plugin_says_where_kinds_come_from():
    with pytest.raises(ConfigError, match=r"unknown block kind 'fused_nowhere'.*under plugins"):
        parse_config({"space": {"kind": ["fused_nowhere"]}})


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("absent_plugin", None, "plugins: no module named 'absent_plugin'; run from the folder"),
        ("broken_plugin", "x = undefined_name\n",
         r"plugins: importing 'broken_plugin' failed: NameError: .*broken_plugin.py, line 1\)"),
        ("needs_plugin", "import not_installed_anywhere\n",
         "importing 'needs_plugin' failed: ModuleNotFoundError: No module named "
         "'not_installed_anywhere'"),
        ("my/blocks.py", None, r"not a Python module name; give the module's import name "
         r"\('my\.blocks'\)"),
        ("exits_plugin", "import sys\nsys.exit('bye')\n",
         r"importing 'exits_plugin' failed: SystemExit: bye .*exits_plugin.py, line 2\)"),
        ("refused_plugin", "import json\njson.loads('{{')\n",
         r"JSONDecodeError: .*refused_plugin.py, line 2\)$"),  # the user's line, not json's
    ],
)  # fmt: skip
def test_a_plugin_that_does_not_import_is_one_sentence(plugin, tmp_path, name, text, said):
    if text is not None:
        plugin(name, "unused", text)
    with pytest.raises(ConfigError, match=said) as refused:
        parse_config({"plugins": [name]}, "run.yaml")
    assert str(refused.value).startswith("run.yaml: plugins: ")


def test_plugins_given_as_one_name_is_said_so():
    with pytest.raises(ConfigError, match=r"plugins: must be a list of module names, e\.g\. "):
        parse_config({"plugins": "my_blocks", "space": {"kind": ["conv"]}})


def test_a_data_folder_named_like_a_plugin_is_no_module(plugin, tmp_path):
    # results/ or models/ beside the command: Python would never import it in place of
    # the user's installed module, so it is no shadow.
    (tmp_path / "elsewhere").mkdir()
    plugin("elsewhere/folder_named_plugin", "folder_kind")
    sys.path.append(str(tmp_path / "elsewhere"))
    (tmp_path / "folder_named_plugin").mkdir()
    config = parse_config({"plugins": ["folder_named_plugin"], "space": {"kind": ["folder_kind"]}})
    assert config.space.kind == ["folder_kind"]


def test_a_plugin_named_like_another_module_is_refused(plugin, tmp_path):
    # `code` is the standard library's, imported already: which file a process took would
    # depend on its entry point.
    import code  # noqa: F401

    assert "code" in sys.modules  # (kept: the fixture drops only what the test added)

    plugin("code", "shadow_kind")
    with pytest.raises(ConfigError, match=r"plugins: 'code' in .* has the name of another module"):
        parse_config({"plugins": ["code"]})


def test_a_user_kinds_stage_draws_no_prune_ratio(plugin):
    # Its channels are not pruned: a drawn ratio would train the same network twice.
    plugin("fused_plugin_b", "fused_b")
    parse_config({"plugins": ["fused_plugin_b"]})
    space = SearchSpace(
        num_stages=Choice((2,)), kind=Choice(("fused_b", "conv")), prune_ratio=Choice((0.25, 0.5))
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        candidate = space.suggest(trial)
        for i, (stage, policy) in enumerate(
            zip(candidate.arch.stages, candidate.policy.stages, strict=True)
        ):
            user = stage.kind == "fused_b"
            seen.add(stage.kind)
            assert policy.prune_ratio in ({0.0} if user else {0.25, 0.5})
            assert (f"p{i}_prune_ratio" in trial.params) != user
        study.tell(trial, 0.0)
    assert seen == {"fused_b", "conv"}


def test_devices_and_calibrate_import_plugins_that_register_devices(plugin, tmp_path, capsys):
    from search.cli import main

    plugin(
        "device_plugin",
        "unused",
        "import yaml\n"
        "from evaluators.devices import PROFILE_DIR, Device, register_device\n"
        "data = yaml.safe_load((PROFILE_DIR / 'cortex-m7.yaml').read_text())\n"
        "data['name'] = 'plugged_m7'\n"
        "register_device(Device.model_validate(data))\n",
    )
    try:
        assert main(["devices", "--results", str(tmp_path), "--plugins", "device_plugin"]) == 0
        assert "plugged_m7" in capsys.readouterr().out
        assert main(["devices", "--plugins", "absent_plugin"]) == 2
        assert "--plugins: no module named 'absent_plugin'" in capsys.readouterr().err
    finally:
        from evaluators import devices

        devices._REGISTERED.pop("plugged_m7", None)


def test_export_of_a_user_kind_imports_the_runs_plugins_or_says_so_first(plugin, tmp_path):
    from search.export import export_trial

    plugin("fused_plugin_c", "fused_c")
    parse_config({"plugins": ["fused_plugin_c"]})
    candidate = Candidate(
        ArchSpec(8, (StageSpec("fused_c", 1, 8),)), CompressionPolicy((StagePolicy(),))
    )
    run = tmp_path / "run"
    models = run / "models" / "0"
    models.mkdir(parents=True)
    for name in ("model.onnx", "model.pt", "channels.json"):
        (models / name).write_bytes(b"x")
    (models / "candidate.json").write_text(candidate.to_json())
    pd.DataFrame(
        [{"number": 0, "status": "ok", "genome": candidate.genome, "artifacts": "models/0"}]
    ).to_csv(run / "trials.csv", index=False)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "run"}))  # plugins not listed
    del sys.modules["fused_plugin_c"]
    blocks._BLOCKS.pop("fused_c")  # as in a new process
    with pytest.raises(ConfigError, match=r"unknown block kind 'fused_c'.*under plugins"):
        export_trial(run, 0, tmp_path / "ship")
    assert not (tmp_path / "ship").exists()  # nothing half-written
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "run", "plugins": ["fused_plugin_c"]}))
    out = export_trial(run, 0, tmp_path / "ship")
    assert json.loads((out / "manifest.json").read_text())["trial"] == 0
