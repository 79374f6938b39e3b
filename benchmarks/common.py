"""What every benchmark shares: the machine description, the JSON record, the README table.

Each benchmark writes results/benchmarks/NAME.json (machine, command, figures) and
rewrites its table in the README between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``, so that every number in the README comes from a JSON file
that code in this repository measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"
README = ROOT / "README.md"


def machine() -> dict:
    import onnxruntime
    import torch

    from evaluators.probe_runner import cpu_name

    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "simd": simd,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def command() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def _commit() -> str | None:
    """The checkout's commit, ``+changes`` when files differ from it: read when a benchmark
    starts, since a run of an hour outlives edits to the tree it was started from."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        # Code only: results and the README a benchmark rewrites are not what it ran.
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "*.py", "*.toml")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes" if changed else head


COMMIT = _commit()


def write_result(name: str, result: dict, out: str | Path | None = None) -> Path:
    path = Path(out) if out is not None else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": command(),
        "commit": COMMIT,
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def goals_markdown(goals: dict[str, bool]) -> str:
    """The goals of a record as README lines: held or not, nothing in between."""
    lines = "\n".join(f"- {name}: {'yes' if held else 'NO'}" for name, held in goals.items())
    return f"Goals on this machine:\n{lines}"


def source_line(path: Path, record: dict) -> str:
    """Where a README block's figures come from: the JSON file, its command and date."""
    return f"From `{path.relative_to(ROOT)}` (`{record['command']}`, {record['date']})."


def update_readme(name: str, markdown: str, readme: Path = README) -> bool:
    """Replace the README block of benchmark ``name``; False when its markers are absent."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{markdown.strip()}\n{end}{tail}")
    return True


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def runs_folder(runs: str | None, prefix: str) -> Iterator[Path]:
    """Where a benchmark's searches keep their runs: ``runs`` when given (kept, so that
    running again reads finished searches back), else a temporary folder. Either way the
    checkout's cached teacher (and its logits) is linked in, shared by every search."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        results = Path(runs or tmp)
        results.mkdir(parents=True, exist_ok=True)
        shared = ROOT / "results" / "teachers"
        # On a fresh checkout the cache does not exist yet: a dangling link would make the
        # first search's teacher fail to create its folder.
        shared.mkdir(parents=True, exist_ok=True)
        if not (results / "teachers").is_symlink() and not (results / "teachers").exists():
            os.symlink(shared, results / "teachers")
        yield results
