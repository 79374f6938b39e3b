"""evaluators.data: real datasets (sklearn digits, Debian's Fashion-MNIST), tiny synthetic
IDX files and image folders written per test; nothing is ever downloaded."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluators.data as data
from evaluators.data import (
    Dataset,
    DatasetError,
    DatasetNotFoundError,
    Preprocessing,
    UnknownDatasetError,
    dataset_names,
    load_dataset,
    make_dataset,
    read_idx,
    register_dataset,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images.reshape(len(images), -1)}


# ------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


def test_digits_splits_cover_the_dataset_without_overlap(digits: Dataset) -> None:
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == 1797
    assert len(digits.test) == 360  # 20% of 1797, rounded up by sklearn
    assert len(digits.val) == pytest.approx(0.1 * (1797 - 360), abs=1)
    # load_digits has no duplicate images, so identical rows would mean a leaked image.
    train, val, test = (_rows(s.images) for s in (digits.train, digits.val, digits.test))
    assert len(train) + len(val) + len(test) == 1797
    assert not (train & val or train & test or val & test)


def test_digits_shapes_labels_and_normalisation(digits: Dataset) -> None:
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.class_names == tuple("0123456789")
    for split in (digits.train, digits.val, digits.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (1, 8, 8)
        assert set(split.labels.tolist()) == set(range(10))  # stratified: every class
    assert digits.train.images.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train.images.std().item() == pytest.approx(1.0, abs=1e-3)
    # The train statistics were taken from [0, 1] pixels (0..16 divided by 16).
    assert 0 < digits.mean[0] < 1 and 0 < digits.std[0] < 1
    pre = digits.preprocessing
    assert (pre.pixel_scale, pre.size, pre.resize) == (16.0, (8, 8), None)
    raw = np.rint((digits.test.images.numpy() * pre.std[0] + pre.mean[0]) * 16)
    assert raw.min() == 0 and raw.max() == 16  # digits' raw pixels are 0..16
    assert np.array_equal(pre.apply(raw), digits.test.images.numpy())
    assert "8" in repr(digits.train) and "tensor" not in repr(digits)


def test_digits_same_seed_same_split_and_fingerprint(digits: Dataset) -> None:
    again = load_dataset("digits", seed=0)
    for a, b in ((digits.train, again.train), (digits.val, again.val), (digits.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert digits.fingerprint() == again.fingerprint()
    assert len(digits.fingerprint()) == 16
    assert load_dataset("digits", seed=1).fingerprint() != digits.fingerprint()
    assert load_dataset("digits", seed=0, val_fraction=0.2).fingerprint() != digits.fingerprint()


@pytest.mark.slow  # a fresh interpreter importing torch and sklearn: about 4 s
def test_fingerprint_is_identical_in_another_process_with_other_threads(digits: Dataset) -> None:
    # The teacher-logit cache is shared between runs, so the key must not depend on the
    # process (hash randomisation) or on torch's thread count.
    code = (
        "import torch; torch.set_num_threads(1); "
        "from evaluators.data import load_dataset; "
        "print(load_dataset('digits', seed=0).fingerprint())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == digits.fingerprint()


def test_image_size_resizes_tensor_datasets() -> None:
    resized = load_dataset("digits", image_size=16)
    assert resized.input_shape == (1, 16, 16)
    assert resized.preprocessing.size == (16, 16) and "bilinear" in resized.preprocessing.resize
    assert resized.train.images.mean().item() == pytest.approx(0.0, abs=1e-5)


# ------------------------------------------------------------------------ IDX / Fashion-MNIST


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: Path, array: np.ndarray) -> Path:
    raw = _idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)
    return path


def _write_fashion(folder: Path, *, train: int = 40, test: int = 20, side: int = 6) -> dict:
    """Tiny Fashion-MNIST look-alike: train files gzipped, test files plain (both occur)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, side, side)),
        "train-labels-idx1-ubyte.gz": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, side, side)),
        "t10k-labels-idx1-ubyte": np.arange(test) % 10,
    }
    for name, array in arrays.items():
        _write_idx(folder / name, array)
    return arrays


def test_read_idx_plain_and_gz(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        out = read_idx(_write_idx(tmp_path / name, array), ndim=3)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, array)


def test_fashion_from_synthetic_idx_files(tmp_path: Path) -> None:
    arrays = _write_fashion(tmp_path)
    ds = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.25)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)
    assert ds.input_shape == (1, 6, 6)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[-1] == "Ankle boot"
    assert ds.num_classes == 10
    assert ds.source == str(tmp_path)
    assert sorted(ds.val.labels.tolist()) == list(range(10))  # stratified: one per class
    # The official test split keeps its order; undo the normalisation to compare pixels.
    pixels = ds.test.images * ds.std[0] + ds.mean[0]
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:, None] / 255).float()
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)
    assert ds.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    # What an export's manifest tells a user to do to raw pixels is what training did.
    pre = ds.preprocessing
    assert pre.pixel_scale == 255 and pre.size == (6, 6) and pre.resize is None
    fed = pre.apply(arrays["t10k-images-idx3-ubyte"][:, None].astype(np.uint8))
    assert np.array_equal(fed, ds.test.images.numpy())
    with pytest.raises(ValueError, match=r"pixels must be \[N, 1, 6, 6\]"):
        pre.apply(np.zeros((2, 1, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must be grayscale \(1 channel\), got 3 channel"):
        pre.apply(np.zeros((2, 3, 6, 6), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"channels last \(2, 6, 6, 1\); transpose them"):
        pre.apply(np.zeros((2, 6, 6, 1), dtype=np.uint8))


def test_split_fingerprints_tell_which_images_a_run_measured_on(tmp_path: Path) -> None:
    _write_fashion(tmp_path)
    first = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=0)
    again = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=0)
    reseeded = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=1)
    assert first.split_fingerprints() == again.split_fingerprints()
    # Another seed carves another validation split out of train and so normalises with
    # other statistics, yet the official test images are the same ones.
    assert first.mean != reseeded.mean
    assert first.split_fingerprints()["validation"] != reseeded.split_fingerprints()["validation"]
    assert first.split_fingerprints()["test"] == reseeded.split_fingerprints()["test"]
    # Digits has no official test split: another seed holds out other test images.
    digits = [load_dataset("digits", seed=seed).split_fingerprints()["test"] for seed in (0, 1)]
    assert digits[0] != digits[1]


def test_fashion_in_torchvision_layout(tmp_path: Path) -> None:
    _write_fashion(tmp_path / "FashionMNIST" / "raw")
    ds = load_dataset("fashion-mnist", root=tmp_path)
    assert ds.source == str(tmp_path / "FashionMNIST" / "raw")
    assert len(ds.train) + len(ds.val) == 40


def test_fashion_bad_magic_number_names_the_file(tmp_path: Path) -> None:
    _write_fashion(tmp_path)
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x12\x34" + bad.read_bytes()[2:])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.*magic"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_fashion_truncated_or_mismatched_files(tmp_path: Path) -> None:
    _write_fashion(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load_dataset("fashion-mnist", root=tmp_path)
    _write_idx(images, np.zeros((3, 6, 6)))  # 3 images, 20 labels
    with pytest.raises(DatasetError, match="3 images"):
        load_dataset("fashion-mnist", root=tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_fashion_missing_without_download(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "no-debian-here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fashion-mnist", root=empty, download=False)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "dataset-fashion-mnist" in message and "dataset.download: true" in message
    assert str(empty) in message and "no-debian-here" in message
    assert "\n" not in message


def test_a_root_without_the_files_is_said_when_debians_copy_is_used(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    debian = tmp_path / "debian"
    debian.mkdir()
    _write_fashion(debian)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", debian)
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level("WARNING"):
        ds = load_dataset("fashion-mnist", root=empty, download=False)
    assert str(debian) in ds.source
    assert f"dataset.root {empty} holds no Fashion-MNIST IDX files; using {debian}" in caplog.text


def test_real_debian_fashion_mnist() -> None:
    # make test (and so CI) installs the Debian package; without it this test must fail.
    assert data.DEBIAN_FASHION_DIR.is_dir(), (
        "run 'make data' (apt-get install dataset-fashion-mnist)"
    )
    ds = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54_000, 6_000, 10_000)
    assert ds.input_shape == (1, 28, 28)
    assert "dataset-fashion-mnist" in ds.source
    assert torch.bincount(ds.val.labels).tolist() == [600] * 10
    assert torch.bincount(ds.test.labels).tolist() == [1000] * 10
    assert ds.train.images.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert ds.train.images.std().item() == pytest.approx(1.0, abs=1e-3)


# -------------------------------------------------------------------------------- imagefolder


def _write_images(folder: Path, classes: dict[str, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            # Mixed sizes and modes: the loader must resize and convert everything to RGB.
            if i % 2:
                image = Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), "L")
            else:
                image = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "RGB")
            image.save(folder / name / f"{i}.png")
    (folder / "README.txt").write_text("not an image, not a class")


def test_imagefolder_single_folder_is_split(tmp_path: Path) -> None:
    _write_images(tmp_path, {"cat": 6, "dog": 6})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=16, val_fraction=0.2)
    assert ds.input_shape == (3, 16, 16)
    assert ds.num_classes == 2 and ds.class_names == ("cat", "dog")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12
    assert len(ds.test) >= 2 and len(ds.val) >= 1 and len(ds.train) >= 6
    again = load_dataset("imagefolder", root=tmp_path, image_size=16, val_fraction=0.2)
    assert again.fingerprint() == ds.fingerprint()
    pre = ds.preprocessing
    assert pre.pixel_scale == 255 and pre.size == (16, 16) and "Resize((16, 16))" in pre.resize
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    assert pre.to_dict()["channels"] == "RGB"


def test_imagefolder_train_test_layout(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", {"a": 6, "b": 6})
    _write_images(tmp_path / "test", {"a": 2, "b": 2})
    ds = load_dataset("imagefolder", root=tmp_path, val_fraction=0.25)
    assert ds.input_shape == (3, 32, 32)  # the default size
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 3, 4)
    assert ds.test.labels.tolist() == [0, 0, 1, 1]


def test_imagefolder_split_folders_must_share_classes(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", {"a": 4, "b": 4})
    _write_images(tmp_path / "test", {"a": 2, "c": 2})
    with pytest.raises(DatasetError, match="same class subfolders"):
        load_dataset("imagefolder", root=tmp_path)


def test_imagefolder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"dataset\.root"):
        load_dataset("imagefolder")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("imagefolder", root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="no class subfolders"):
        load_dataset("imagefolder", root=tmp_path)


def _write_gray(folder: Path, classes: dict[str, int], mode: str = "L") -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (10, 10), dtype=np.uint8)
            if mode == "I;16":
                Image.fromarray(pixels.astype(np.uint16) * 257).save(folder / name / f"{i}.png")
            else:
                Image.fromarray(pixels, "L").save(folder / name / f"{i}.png")


def test_imagefolder_keeps_one_channel_when_every_image_is_grayscale(tmp_path: Path) -> None:
    _write_gray(tmp_path, {"a": 5, "b": 5})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, val_fraction=0.25)
    assert ds.input_shape == (1, 8, 8)
    assert ds.preprocessing.to_dict()["channels"] == "grayscale"
    assert "grayscale" in ds.source and "convert('L')" in ds.preprocessing.resize


def test_imagefolder_warns_of_what_costs_memory_unasked(tmp_path: Path, caplog) -> None:
    from PIL import Image

    _write_gray(tmp_path / "few", {"a": 5, "b": 5})
    Image.new("RGB", (10, 10), (200, 10, 10)).save(tmp_path / "few" / "a" / "colour.png")
    with caplog.at_level("WARNING", logger="evaluators.data"):
        ds = load_dataset("imagefolder", root=tmp_path / "few", val_fraction=0.25)
    assert ds.input_shape == (3, 32, 32)
    said = caplog.text
    assert "1 of 11 images are colour" in said and "colour.png" in said
    assert "the images are 10x10 (11 of 11) and are resized to 32x32" in said
    # Grey pictures saved as RGB files: three equal channels.
    (tmp_path / "grey" / "a").mkdir(parents=True)
    (tmp_path / "grey" / "b").mkdir()
    for i in range(10):
        Image.new("RGB", (8, 8), (i * 20,) * 3).save(tmp_path / "grey" / "ab"[i % 2] / f"{i}.png")
    caplog.clear()
    with caplog.at_level("WARNING", logger="evaluators.data"):
        load_dataset("imagefolder", root=tmp_path / "grey", image_size=8, val_fraction=0.25)
    assert "is grey (its three colour channels are equal)" in caplog.text
    assert "resized" not in caplog.text  # the size was asked for
    # Genuinely mixed data says nothing.
    _write_images(tmp_path / "mixed", {"a": 4, "b": 4})
    caplog.clear()
    with caplog.at_level("WARNING", logger="evaluators.data"):
        load_dataset("imagefolder", root=tmp_path / "mixed", image_size=16, val_fraction=0.25)
    assert caplog.text == ""


def test_imagefolder_with_train_alone_holds_test_out_of_it(tmp_path: Path) -> None:
    # The split folder is not a class: a model of one class "train" would score 100 %.
    _write_images(tmp_path / "train", {"a": 6, "b": 6})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, val_fraction=0.2)
    assert ds.class_names == ("a", "b")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12 and len(ds.test) >= 2
    assert "train/, 20% held out as test" in ds.source


def test_imagefolder_train_and_valid_the_valid_folder_is_the_test_split(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", {"a": 6, "b": 6})
    _write_images(tmp_path / "valid", {"a": 3, "b": 1})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, val_fraction=0.25)
    assert ds.class_names == ("a", "b")
    assert ds.test.labels.tolist() == [0, 0, 0, 1]
    assert (len(ds.train), len(ds.val)) == (9, 3)
    assert "valid/ as test" in ds.source


def test_imagefolder_split_folders_are_known_in_any_case(tmp_path: Path) -> None:
    # A downloaded dataset's Train/ and Test/: read as classes, the model would learn which
    # split an image came from.
    _write_images(tmp_path / "Train", {"a": 6, "b": 6})
    _write_images(tmp_path / "Test", {"a": 2, "b": 2})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, val_fraction=0.25)
    assert ds.class_names == ("a", "b") and len(ds.test) == 4
    assert "Train/ as train, Test/ as test" in ds.source


def test_imagefolder_refuses_a_split_folder_among_classes(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", {"a": 4, "b": 4})
    _write_images(tmp_path / "train" / "Validation", {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=r"holds Validation/ among its class folders"):
        load_dataset("imagefolder", root=tmp_path, image_size=8)


def test_imagefolder_split_folders_without_train_are_refused(tmp_path: Path) -> None:
    _write_images(tmp_path / "test", {"a": 2, "b": 2})
    _write_images(tmp_path / "validation", {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=r"has test/, validation/ but no train/"):
        load_dataset("imagefolder", root=tmp_path)


def test_imagefolder_needs_two_classes(tmp_path: Path) -> None:
    _write_images(tmp_path, {"only": 4})
    with pytest.raises(DatasetError, match=r"one class subfolder \(only\); a classifier"):
        load_dataset("imagefolder", root=tmp_path)


def test_imagefolder_names_an_empty_class_and_ignores_hidden_folders(tmp_path: Path) -> None:
    _write_images(tmp_path, {"a": 4, "b": 4})
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "__MACOSX" / "a").mkdir(parents=True)
    (tmp_path / "a" / "._0.png").write_bytes(b"macOS resource fork, not an image")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, val_fraction=0.2)
    assert ds.class_names == ("a", "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(DatasetError, match=r"class folder c in .* holds no images"):
        load_dataset("imagefolder", root=tmp_path, image_size=8)


def test_imagefolder_refuses_16_bit_images_rather_than_clip_them(tmp_path: Path) -> None:
    _write_gray(tmp_path, {"a": 2, "b": 2}, mode="I;16")
    with pytest.raises(DatasetError, match=r"16-bit or float pixels .*convert the images"):
        load_dataset("imagefolder", root=tmp_path, image_size=8)


# ------------------------------------------------------------------------ registry and errors


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(UnknownDatasetError) as caught:
        load_dataset("xyz")
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == (
        "unknown dataset 'xyz'; choose one of: cifar10, digits, fashion-mnist, imagefolder (a "
        "dataset of your own is registered by a module the run's config lists under plugins)"
    )


def test_dataset_errors_print_on_one_line() -> None:
    assert str(DatasetError("first\nsecond")) == "first second"


def test_cifar10_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"dataset\.download: true"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_bad_val_fraction_is_a_dataset_error() -> None:
    for fraction in (0.0, 1.0):
        with pytest.raises(DatasetError, match="val_fraction"):
            load_dataset("digits", val_fraction=fraction)


def test_register_a_dataset(monkeypatch) -> None:
    monkeypatch.setattr(data, "_REGISTRY", dict(data._REGISTRY))

    @register_dataset("stripes")
    def load_stripes(root, *, download, val_fraction, seed, image_size) -> Dataset:
        images = np.repeat(np.arange(2), 20)[:, None, None, None] * np.ones((1, 1, 4, 4))
        labels = np.repeat(np.arange(2), 20)
        return make_dataset(
            "stripes",
            images,
            labels,
            images[:4],
            labels[:4],
            class_names=("off", "on"),
            source="generated",
            val_fraction=val_fraction,
            seed=seed,
            image_size=image_size,
        )

    assert "stripes" in dataset_names()
    ds = load_dataset("stripes", val_fraction=0.5)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (20, 20, 4)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("digits")(load_stripes)


@pytest.mark.parametrize("gray", [False, True])
def test_the_readmes_image_file_preprocessing_reproduces_the_training_input(
    tmp_path: Path, gray: bool
) -> None:
    # As printed in the README: what a user does to one image file before the ONNX model.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("# Preprocess one image file as an imagefolder run's")
    snippet = readme[start : readme.index("```", start)]
    write = _write_gray if gray else _write_images
    write(tmp_path / "train", {"a": 4, "b": 4})
    write(tmp_path / "test", {"a": 2, "b": 2})
    ds = load_dataset("imagefolder", root=tmp_path, image_size=9, val_fraction=0.25)
    assert ds.input_shape == ((1, 9, 9) if gray else (3, 9, 9))
    manifest = {"preprocessing": ds.preprocessing.to_dict()}
    # The test split is the test/ folder in scan order: sorted classes, then sorted files.
    files = sorted((tmp_path / "test").glob("*/*.png"))
    assert len(files) == len(ds.test)
    for index, path in enumerate(files):
        scope = {"manifest": manifest, "path": str(path)}
        exec(snippet, scope)
        assert np.array_equal(scope["x"], ds.test.images[index : index + 1].numpy())
