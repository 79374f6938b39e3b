"""A candidate's architecture, stage by stage, read back from its genome string: as plain data,
and as the strip of boxes that the Pareto table draws."""

from __future__ import annotations

import re
from typing import Any

from search.report.formatting import esc

_KINDS = {"mb": "mbconv", "ds": "dsconv", "gc": "gconv", "cv": "conv"}
_STAGE = re.compile(
    r"^(?P<kind>[A-Za-z_]+?)(?P<depth>\d+)x(?P<width>\d+)k(?P<kernel>\d+)"
    r"(?:e(?P<expansion>\d+))?(?:g(?P<groups>\d+))?(?:s(?P<stride>\d+))?$"
)
_POLICY = re.compile(
    r"^p(?P<prune>[0-9.eE+-]+?)w(?P<weight>\d+)a(?P<activation>\d+)"
    r"(?:u(?P<sparsity>[0-9.eE+-]+?))?(?:r(?P<rank>[0-9.eE+-]+?)(?P<kxk>k)?)?$"
)
_STEM = re.compile(r"^c(?P<width>\d+)(?:s(?P<stride>\d+))?$")


def parse_genome(genome: str) -> dict[str, Any] | None:
    """The genome string (``c16,mb2x24k3e4s1|p0w8a8``, as ``spaces.Candidate.genome`` writes
    it) as plain data: ``{"stem": {...} or None, "stages": [{kind, depth, width, kernel,
    expansion, groups, stride, prune_ratio, weight_bits, activation_bits, sparsity,
    rank_ratio, factorize_kxk}]}``.

    Tolerant: trials.csv carries only the string, possibly from an older version of the
    space, so an unknown token keeps its text (``raw``) instead of failing; None when nothing
    in the string looks like a stage.
    """
    if not isinstance(genome, str) or not genome.strip():
        return None
    arch_text, _, policy_text = genome.strip().partition("|")
    tokens = [t.strip() for t in arch_text.split(",") if t.strip()]
    stem = None
    if tokens and (match := _STEM.match(tokens[0])):
        stem = {"width": int(match["width"]), "stride": int(match["stride"] or 1)}
        tokens = tokens[1:]
    policies = [t.strip() for t in policy_text.split(",") if t.strip()]
    stages = []
    for index, token in enumerate(tokens):
        match = _STAGE.match(token)
        stage: dict[str, Any] = {"raw": token}
        if match:
            stage.update(
                kind=_KINDS.get(match["kind"], match["kind"]),
                depth=int(match["depth"]),
                width=int(match["width"]),
                kernel=int(match["kernel"]),
                expansion=int(match["expansion"] or 1),
                groups=int(match["groups"] or 1),
                stride=int(match["stride"] or 1),
            )
        policy = _POLICY.match(policies[index]) if index < len(policies) else None
        if policy:
            stage.update(
                prune_ratio=float(policy["prune"]),
                weight_bits=int(policy["weight"]),
                activation_bits=int(policy["activation"]),
                sparsity=float(policy["sparsity"] or 0.0),
                rank_ratio=float(policy["rank"] or 1.0),
                factorize_kxk=bool(policy["kxk"]),
            )
        stages.append(stage)
    if not any("kind" in stage for stage in stages):
        return None
    return {"stem": stem, "stages": stages}


def architecture_strip(genome: str) -> str:
    """An inline strip of boxes, one per stage (after the stem): block kind and depth, width,
    kernel (expansion, groups, stride 2 where they apply), then the stage's prune ratio and
    weight/activation bit-widths; the bar under each box is the share of channels kept."""
    parsed = parse_genome(genome)
    if parsed is None:
        return '<span class="note">\u2014</span>'
    boxes = []
    stem = parsed["stem"]
    if stem is not None:
        down = " \u2193" if stem["stride"] == 2 else ""
        boxes.append(
            f'<span class="blk stem" title="stem convolution, {stem["width"]} channels'
            f'{", stride 2" if down else ""}">stem<br>{stem["width"]}{down}</span>'
        )
    for index, stage in enumerate(parsed["stages"]):
        if "kind" not in stage:
            boxes.append(f'<span class="blk other">{esc(stage["raw"])}</span>')
            continue
        kind = stage["kind"]
        shape = f"{stage['width']} k{stage['kernel']}"
        details = [f"{stage['width']} channels", f"kernel {stage['kernel']}"]
        if kind in ("mbconv", "gconv"):
            shape += f" e{stage['expansion']}"
            details.append(f"expansion {stage['expansion']}")
        if kind == "gconv":
            shape += f" g{stage['groups']}"
            details.append(f"groups {stage['groups']}")
        if stage["stride"] == 2:
            shape += " \u2193"
            details.append("stride 2")
        lines = [f"<b>{esc(kind)} \u00d7{stage['depth']}</b>", esc(shape)]
        keep = 1.0
        if "prune_ratio" in stage:
            keep = 1.0 - stage["prune_ratio"]
            policy = (
                f"p{stage['prune_ratio']:g} w{stage['weight_bits']}/a{stage['activation_bits']}"
            )
            if stage["sparsity"]:
                policy += f" u{stage['sparsity']:g}"
            rank = stage["rank_ratio"]
            if rank < 1.0:
                policy += f" r{rank:g}" + ("k" if stage["factorize_kxk"] else "")
            lines.append(esc(policy))
            details.append(
                f"prune {100 * stage['prune_ratio']:.0f}% of channels, weights "
                f"{stage['weight_bits']}-bit, activations {stage['activation_bits']}-bit"
                + (f", sparsity {100 * stage['sparsity']:.0f}%" if stage["sparsity"] else "")
                + (
                    f", 1x1 layers at rank {rank:g} of full"
                    + (" and k x k as k x 1 + 1 x k" if stage["factorize_kxk"] else "")
                    if rank < 1.0
                    else ""
                )
            )
        title = f"stage {index + 1}: {kind} \u00d7{stage['depth']}, " + ", ".join(details)
        css = f"k-{kind}" if kind in _KINDS.values() else "other"
        boxes.append(
            f'<span class="blk {css}" title="{esc(title)}">{"<br>".join(lines)}'
            f'<i class="keep" style="width:{100 * keep:.0f}%"></i></span>'
        )
    return f'<span class="arch">{"".join(boxes)}</span>'
