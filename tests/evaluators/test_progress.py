"""Progress on a terminal is a bar; in a log it is a few whole lines."""

from __future__ import annotations

import io

import torch
from tqdm.auto import tqdm

from evaluators.distill import TrainConfig, train
from evaluators.progress import LineProgress, progress_bar
from spaces import build_model, get_candidate


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_per_interval_with_share_figures_and_time_left():
    clock, log = _Clock(), io.StringIO()
    bar = LineProgress(total=300, desc="teacher", interval=30, file=log, clock=clock)
    for _ in range(20):
        clock.now += 1
        bar.update()
    assert log.getvalue() == ""  # 20 s: nothing yet
    bar.set_postfix(epoch=1, loss="2.049")
    for _ in range(40):
        clock.now += 1
        bar.update()
    lines = log.getvalue().splitlines()
    # One line at 30 s (30 of 300 steps: 270 more at 1 s each) and one at 60 s.
    assert lines == [
        "teacher: 30/300 (10 %), epoch 1, loss 2.049, 30 s elapsed, about 4.5 min left",
        "teacher: 60/300 (20 %), epoch 1, loss 2.049, 60 s elapsed, about 4.0 min left",
    ]
    assert "\r" not in log.getvalue()
    # The log ends where the work ended, not where it was at the last line.
    for _ in range(5):
        clock.now += 1
        bar.update()
    bar.close()
    assert log.getvalue().splitlines()[-1].startswith("teacher: 65/300 (22 %), epoch 1")
    assert len(log.getvalue().splitlines()) == 3


def test_short_work_writes_nothing_even_when_closed():
    clock, log = _Clock(), io.StringIO()
    bar = LineProgress(desc="trial 3 train", file=log, clock=clock)
    for _ in range(10):
        clock.now += 1
        bar.update()
    bar.close()
    assert log.getvalue() == ""


def test_line_progress_wraps_an_iterable_and_counts_it():
    clock, log = _Clock(), io.StringIO()
    seen = []
    for item in LineProgress(["a", "b", "c"], desc="probe kit", file=log, clock=clock):
        seen.append(item)
        clock.now += 100
    assert seen == ["a", "b", "c"]
    assert log.getvalue().splitlines()[-1].startswith("probe kit: 3/3 (100 %)")


def test_the_stream_decides_between_bar_and_lines():
    assert isinstance(progress_bar(total=3, stream=io.StringIO()), LineProgress)
    terminal = progress_bar(total=3, stream=_Terminal())
    assert isinstance(terminal, tqdm) and not terminal.disable
    terminal.close()
    silent = progress_bar(total=3, enabled=False, stream=io.StringIO())
    assert isinstance(silent, tqdm) and silent.disable


def test_training_with_progress_into_a_log_writes_no_carriage_returns(capsys):
    images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
    model = build_model(get_candidate("tiny_dsconv"), 1, 3)
    train(model, images, labels, None, TrainConfig(epochs=2, batch_size=16), progress=True)
    assert "\r" not in capsys.readouterr().err
