from __future__ import annotations

import math

import pytest
import torch

from evaluators.distill import TrainConfig, TrainingDiverged, kd_loss, train
from spaces import build_model, get_candidate

# Two samples, three classes, T = 2, alpha = 0.7, worked out by hand:
#   sample 1: KL(softmax(t/T) || softmax(s/T)) = 0.453638..., CE = 0.407605...
#   sample 2: KL = 0.387029...,                                CE = 0.407605...
#   loss = 0.7 * 2^2 * mean(KL) + 0.3 * mean(CE) = 1.2992165...
STUDENT = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]])
TEACHER = torch.tensor([[3.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
LABELS = torch.tensor([2, 0])


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_kd_loss_equals_the_hand_computed_value():
    loss = kd_loss(STUDENT, TEACHER, LABELS, temperature=2.0, alpha=0.7)
    assert loss.item() == pytest.approx(1.2992165895223047, abs=1e-6)


def test_kd_loss_equals_the_formula_term_by_term():
    temperature, alpha = 3.0, 0.4
    kls, ces = [], []
    for s, t, y in zip(STUDENT.tolist(), TEACHER.tolist(), LABELS.tolist(), strict=True):
        p = _softmax([v / temperature for v in t])
        q = _softmax([v / temperature for v in s])
        kls.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))
        ces.append(-math.log(_softmax(s)[y]))
    expected = alpha * temperature**2 * sum(kls) / 2 + (1 - alpha) * sum(ces) / 2
    assert kd_loss(STUDENT, TEACHER, LABELS, temperature, alpha).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_alpha_zero_is_plain_cross_entropy():
    plain = torch.nn.functional.cross_entropy(STUDENT, LABELS)
    assert kd_loss(STUDENT, TEACHER, LABELS, 4.0, 0.0).item() == pytest.approx(plain.item())
    assert kd_loss(STUDENT, None, LABELS, 4.0, 0.9).item() == pytest.approx(plain.item())


def test_a_student_matching_the_teacher_has_no_soft_loss():
    assert kd_loss(TEACHER, TEACHER, LABELS, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_training_with_kd_moves_the_student_towards_the_teacher():
    torch.manual_seed(0)
    images = torch.randn(128, 1, 8, 8)
    labels = torch.randint(0, 3, (128,))
    # A teacher the student can imitate: logits from the mean brightness of image regions.
    regions = images.reshape(128, 1, 2, 4, 2, 4).mean(dim=(3, 5)).flatten(1)
    teacher_logits = regions[:, :3] * 8

    def distance_to_teacher(alpha: float) -> float:
        torch.manual_seed(1)
        model = build_model(get_candidate("tiny_dsconv"), 1, 3)
        config = TrainConfig(epochs=30, batch_size=32, lr=1e-2, alpha=alpha)
        train(model, images, labels, teacher_logits, config, progress=False)
        model.eval()
        return kd_loss(model(images), teacher_logits, labels, 4.0, 1.0).item()

    torch.manual_seed(1)
    untrained = build_model(get_candidate("tiny_dsconv"), 1, 3).eval()
    before = kd_loss(untrained(images), teacher_logits, labels, 4.0, 1.0).item()
    with_kd = distance_to_teacher(1.0)
    labels_only = distance_to_teacher(0.0)
    assert with_kd < 0.75 * before
    assert with_kd < labels_only


def test_a_nan_loss_stops_training():
    model = build_model(get_candidate("tiny_dsconv"), 1, 3)
    images = torch.full((8, 1, 8, 8), float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1"):
        train(
            model,
            images,
            torch.zeros(8, dtype=torch.long),
            None,
            TrainConfig(epochs=1),
            progress=False,
        )
