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
