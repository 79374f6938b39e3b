"""Datasets as in-memory tensors: train / val / test splits, normalised, in a fixed order.

Every dataset is small enough to live in memory (Fashion-MNIST is 220 MB as float32), so the
training loops index tensors directly instead of going through a DataLoader, and the order of
the train split is a pure function of the seed. That order matters: the teacher's logits are
cached per train index (see ``evaluators.teacher``), keyed by ``Dataset.fingerprint()``.

Loaders are registered by name (timm's ``register_model`` habit), so a user adds a dataset in
one file::

    @register_dataset("mine")
    def load_mine(root, *, download, val_fraction, seed, image_size) -> Dataset:
        ...
        return make_dataset("mine", train_x, train_y, test_x, test_y, class_names=...,
                            source=..., val_fraction=val_fraction, seed=seed)

Errors a user can fix (missing files, corrupt files, a wrong name) are ``DatasetError``s whose
message is one sentence saying what is wrong and how to fix it; the CLI prints it without a
traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import logging
import math
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from evaluators.users_code import said, users_line

log = logging.getLogger(__name__)

# Where Debian's package ``dataset-fashion-mnist`` puts the IDX files; a module constant so
# that tests can point it somewhere empty.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Where torchvision downloads to when no root is given (relative to the working directory,
# like every other run output under results/).
DEFAULT_DOWNLOAD_ROOT = Path("results/data")

FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# The share of a dataset without an official test split that is held out as test.
TEST_FRACTION = 0.2
DEFAULT_IMAGE_SIZE = 32
# Images per block when computing channel statistics: bounds the float64 temporaries to
# ~50 MB whatever the dataset size.
_STATS_CHUNK = 8192


class DatasetError(Exception):
    """A dataset problem the user can fix; the message is one sentence: what, and how to fix it.

    Newlines are folded into spaces so the message always prints as a single line, even when
    it quotes an underlying error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class UnknownDatasetError(DatasetError, ValueError):
    """The requested name is not registered."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are not where we looked (and were not downloaded)."""


@dataclass(frozen=True)
class Preprocessing:
    """What turns a raw image into the network's input, in this order: a deployed model
    needs the same done to its images (an export's manifest.json carries it).

    Raw pixel values are divided by ``pixel_scale`` (to [0, 1]); an image of another size is
    resized to ``size`` as ``resize`` says (``None``: images are used at their own size,
    which must be ``size``); then each channel has the train split's ``mean`` subtracted and
    is divided by its ``std``.
    """

    pixel_scale: float
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str | None = None

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels ``[N, C, H, W]`` at ``size`` (uint8, or the dataset's raw values) as
        the network's float32 input: the same arithmetic, in float32, as the training data
        got, so the results are bitwise those ``make_dataset`` produced."""
        images = np.asarray(pixels, dtype=np.float32)
        if images.ndim == 4 and tuple(images.shape[1:]) == (*self.size, self.shape[0]):
            raise ValueError(
                f"pixels must be [N, C, H, W], got channels last {tuple(images.shape)}; "
                "transpose them first: pixels.transpose(0, 3, 1, 2)"
            )
        if images.ndim == 4 and images.shape[1] != self.shape[0]:
            colour = {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}
            want = colour.get(self.shape[0], f"{self.shape[0]} channels")
            raise ValueError(
                f"pixels must be {want}, got {images.shape[1]} channel(s) in shape "
                f"{tuple(images.shape)}; convert the images to {want.split(' ')[0]} first"
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != self.shape:
            raise ValueError(
                f"pixels must be [N, {', '.join(map(str, self.shape))}], got shape "
                f"{tuple(images.shape)}; resize them first ({self.resize or 'to that size'})"
            )
        if self.pixel_scale != 1.0:
            images = images / np.float32(self.pixel_scale)
        view = (1, -1, 1, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(view)
        std = np.asarray(self.std, dtype=np.float32).reshape(view)
        return (images - mean) / std

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        return len(self.mean), *self.size

    def to_dict(self) -> dict:
        channels = len(self.mean)
        return {
            "formula": "input[c] = (pixels[c] / pixel_scale - mean[c]) / std[c], float32",
            "channels": "grayscale" if channels == 1 else "RGB" if channels == 3 else channels,
            "layout": f"NCHW float32 [1, {', '.join(map(str, self.shape))}]",
            "pixel_scale": self.pixel_scale,
            "size": list(self.size),
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            pixel_scale=float(data["pixel_scale"]),
            size=tuple(data["size"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            resize=data.get("resize"),
        )


@dataclass(frozen=True, eq=False)
class Split:
    """One split: images ``float32 [N, C, H, W]`` (normalised) and labels ``int64 [N]``.

    ``eq=False``: comparing tensors with ``==`` is elementwise, so the generated ``__eq__``
    would raise; splits compare by identity and ``torch.equal`` is there for content.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.float32:
            raise ValueError(
                f"images must be float32 [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(
                f"labels must be int64 [N], got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        # The default repr would print tensor contents; sizes are what one wants in a log.
        return f"Split(n={len(self)}, shape={tuple(self.images.shape[1:])})"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset ready for training: three splits in memory and where they came from.

    ``preprocessing`` is how every split was made from raw pixels (with the per-channel
    statistics of the train split); a deployed model needs the same.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    source: str
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        if self.num_classes != len(self.class_names):
            raise ValueError(f"num_classes={self.num_classes} but {len(self.class_names)} names")

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the train split, in [0, 1] pixel units."""
        return self.preprocessing.mean if self.preprocessing else ()

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the train split, in [0, 1] pixel units."""
        return self.preprocessing.std if self.preprocessing else ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        channels, height, width = self.train.images.shape[1:]
        return int(channels), int(height), int(width)

    def fingerprint(self) -> str:
        """A short stable hash of the data, used as the cache key for teacher logits.

        It covers the name, the split sizes, the shape, the train labels in order and the
        first 64 train images: cheap (no pass over the whole dataset) yet it changes whenever
        the train split's content or order changes (another seed, another val_fraction, other
        files). The normalised bytes are reproducible across processes because the statistics
        are computed by numpy in a fixed order (see ``_channel_stats``).
        """
        digest = hashlib.sha256()
        header = (
            f"{self.name}|{len(self.train)}|{len(self.val)}|{len(self.test)}|"
            f"{self.input_shape}|{self.num_classes}"
        )
        digest.update(header.encode())
        digest.update(self.train.labels.numpy().tobytes())
        digest.update(self.train.images[:64].contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def split_fingerprints(self) -> dict[str, str]:
        """A short hash of the validation and the test split: two runs whose hashes differ
        did not measure accuracy on the same images, so their accuracies cannot be set side
        by side as if they had. It hashes the labels in order and the first 64 images in
        pixel units (normalisation undone and rounded to 1/255), because the normalisation
        follows the train split: Fashion-MNIST's test images are the same under every seed."""
        return {
            "validation": self._split_hash(self.val),
            "test": self._split_hash(self.test),
        }

    def _split_hash(self, split: Split) -> str:
        images = split.images[:64].double()
        if self.mean and self.std:
            shape = (1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float64).view(shape)
            images = images * std + torch.tensor(self.mean, dtype=torch.float64).view(shape)
        pixels = (images * 255).round().clamp(0, 255).to(torch.uint8)
        digest = hashlib.sha256(f"{self.name}|{len(split)}|{self.input_shape}".encode())
        digest.update(split.labels.numpy().tobytes())
        digest.update(pixels.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


class DatasetLoader(Protocol):
    """What ``register_dataset`` decorates; called by ``load_dataset`` with these arguments."""

    def __call__(
        self,
        root: Path | None,
        *,
        download: bool,
        val_fraction: float,
        seed: int,
        image_size: int | None,
    ) -> Dataset: ...


_REGISTRY: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Register a loader under ``name`` (decorator), so configs can ask for it by name."""

    def decorator(loader: DatasetLoader) -> DatasetLoader:
        _check_signature(name, loader)
        existing = _REGISTRY.get(name)
        # Re-registering the same function (a module reloaded) is harmless; two different
        # loaders fighting over one name is a bug worth stopping at import time.
        if existing is not None and _qualified(existing) != _qualified(loader):
            raise ValueError(f"dataset {name!r} is already registered by {_qualified(existing)}")
        _REGISTRY[name] = loader
        return loader

    return decorator


# How ``load_dataset`` calls every loader; a loader must accept this call.
_LOADER_CALL = "(root, *, download, val_fraction, seed, image_size)"


def _check_signature(name: str, loader: Callable[..., object]) -> None:
    """Refuse, at registration, a loader that ``load_dataset``'s call would not fit: the
    mistake is then said where it was made, not as a TypeError in the middle of a search."""
    if not callable(loader):
        raise DatasetError(
            f"dataset {name!r}: register_dataset decorates a loader function, got a "
            f"{type(loader).__name__}; give it a function taking {_LOADER_CALL}"
        )
    try:
        signature = inspect.signature(loader)
    except (TypeError, ValueError):  # a callable Python cannot introspect: trust it
        return
    try:
        signature.bind(None, download=False, val_fraction=0.1, seed=0, image_size=None)
    except TypeError as error:
        raise DatasetError(
            f"dataset {name!r}: its loader {_qualified(loader)} cannot be called "
            f"as load_dataset calls it ({error}); give it the parameters {_LOADER_CALL} "
            "(see evaluators.data.DatasetLoader)"
        ) from None


def _qualified(function: Callable[..., object]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def dataset_names() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    image_size: int | None = None,
) -> Dataset:
    """Load a registered dataset into memory, split and normalised.

    ``val_fraction`` of the training data becomes the validation split (stratified, seeded);
    ``image_size`` resizes images to a square of that side (``imagefolder`` defaults to 32,
    the other datasets keep their native size when it is None).
    """
    loader = _REGISTRY.get(name)
    if loader is None:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())} (a dataset of "
            "your own is registered by a module the run's config lists under plugins)"
        )
    if not 0 < val_fraction < 1:
        raise DatasetError(
            f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}; "
            "set dataset.val_fraction to a value such as 0.1."
        )
    if image_size is not None and image_size < 1:
        raise DatasetError(
            f"image_size must be a positive number of pixels, got {image_size}; "
            "set dataset.image_size to a value such as 32, or leave it null."
        )
    path = Path(root).expanduser() if root is not None else None
    try:
        dataset = loader(
            path, download=download, val_fraction=val_fraction, seed=seed, image_size=image_size
        )
    except DatasetError:
        raise
    except Exception as error:
        if _qualified(loader).startswith(("evaluators.", "search.", "spaces.")):
            raise  # ours: a bug to see whole, not a user's loader to summarise
        # A user's loader: where in it, in one sentence, not a traceback mid-search.
        raise DatasetError(
            f"dataset {name!r}: its loader {_qualified(loader)} failed: {said(error)}"
            f"{users_line(error)}; raise evaluators.DatasetError from it with a sentence "
            "saying how to fix what it found"
        ) from None
    # Checked here, not deep inside training where the first missing attribute would
    # surface (a TensorDataset has no .name, .train or .preprocessing).
    if not isinstance(dataset, Dataset):
        raise DatasetError(
            f"dataset {name!r}: its loader {_qualified(loader)} returned a "
            f"{type(dataset).__name__}, not an evaluators.data.Dataset; build what it returns "
            "with evaluators.data.make_dataset(name, train_images, train_labels, test_images, "
            "test_labels, class_names=..., source=..., val_fraction=..., seed=...)"
        )
    return dataset


# ---------------------------------------------------------------------------- building blocks


def make_dataset(
    name: str,
    train_images: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_images: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    class_names: tuple[str, ...] | list[str],
    source: str,
    val_fraction: float,
    seed: int,
    max_value: float = 1.0,
    image_size: int | None = None,
    val_images: np.ndarray | torch.Tensor | None = None,
    val_labels: np.ndarray | torch.Tensor | None = None,
    loaded_as: tuple[float, str] | None = None,
) -> Dataset:
    """Turn raw ``[N, C, H, W]`` arrays into a ``Dataset``: the one path every loader takes.

    Unless a val split is given, ``val_fraction`` of the training images is held out
    (stratified by label, seeded). Pixels are divided by ``max_value`` to land in [0, 1],
    resized to ``image_size`` if given, and normalised per channel with the train split's
    statistics only, so nothing about val or test leaks into training.

    ``loaded_as`` is for a loader that scaled and resized the images itself before this
    (pixel scale, how it resized): the dataset's ``Preprocessing`` then says so.
    """
    # Raw arrays stay in their own type (uint8 for the IDX files) until split, so the float
    # copies are made once per split rather than for the whole set and again per split.
    train_x, train_y = train_images, _as_labels(train_labels)
    test_x, test_y = test_images, _as_labels(test_labels)
    if val_images is None or val_labels is None:
        keep, held = split_indices(train_y.numpy(), val_fraction, seed, what=f"{name} train")
        val_x, val_y = train_x[held], train_y[torch.from_numpy(held)]
        train_x, train_y = train_x[keep], train_y[torch.from_numpy(keep)]
    else:
        val_x, val_y = val_images, _as_labels(val_labels)

    num_classes = len(class_names)
    for split_name, labels in (("train", train_y), ("val", val_y), ("test", test_y)):
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise DatasetError(
                f"{name} {split_name} labels must lie in 0..{num_classes - 1} but range over "
                f"{int(labels.min())}..{int(labels.max())}; check that the label files match "
                "the dataset."
            )

    splits = [_to_float(x, max_value, image_size) for x in (train_x, val_x, test_x)]
    mean, std = _channel_stats(splits[0])
    mean_t = torch.from_numpy(mean.astype(np.float32)).view(1, -1, 1, 1)
    std_t = torch.from_numpy(std.astype(np.float32)).view(1, -1, 1, 1)
    for images in splits:
        images.sub_(mean_t).div_(std_t)  # elementwise, hence bitwise reproducible
    train, val, test = (
        Split(images, labels)
        for images, labels in zip(splits, (train_y, val_y, test_y), strict=True)
    )
    if loaded_as is not None:
        pixel_scale, resize = loaded_as
    else:
        pixel_scale, resize = max_value, None
        if image_size is not None:
            resize = (
                "bilinear, antialiased, align_corners=False "
                "(torch.nn.functional.interpolate on the [0, 1] pixels)"
            )
    preprocessing = Preprocessing(
        pixel_scale=float(pixel_scale),
        size=tuple(int(side) for side in train.images.shape[2:]),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        resize=resize,
    )
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=num_classes,
        class_names=tuple(class_names),
        source=source,
        preprocessing=preprocessing,
    )


def split_indices(
    labels: np.ndarray, fraction: float, seed: int, *, what: str = "dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(len(labels))`` into (kept, held out), stratified by label.

    The kept indices come back shuffled but in an order fixed by the seed. Classes with a
    single image cannot be stratified (tiny image folders); then the split is a seeded
    plain shuffle, still deterministic.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    try:
        keep, held = train_test_split(
            indices, test_size=fraction, random_state=seed, stratify=labels
        )
    except ValueError:
        try:
            keep, held = train_test_split(indices, test_size=fraction, random_state=seed)
        except ValueError as exc:
            raise DatasetError(
                f"cannot hold out {fraction:g} of {len(labels)} {what} images ({exc}); "
                "add images or change dataset.val_fraction."
            ) from exc
    return np.asarray(keep, dtype=np.int64), np.asarray(held, dtype=np.int64)


def _as_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels.to(torch.int64).reshape(-1)
    # np.array copies: torch refuses to share read-only buffers (np.frombuffer) safely.
    return torch.from_numpy(np.array(labels, dtype=np.int64).reshape(-1))


def _to_float(
    images: np.ndarray | torch.Tensor, max_value: float, image_size: int | None
) -> torch.Tensor:
    """A fresh float32 copy in [0, 1], resized to a square if asked (callers modify it)."""
    if isinstance(images, np.ndarray):
        # np.array copies: the input may be a read-only buffer (np.frombuffer) or the caller's.
        out = torch.from_numpy(np.array(images, dtype=np.float32))
    else:
        out = images.to(torch.float32, copy=True)
    if out.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(out.shape)}")
    if max_value != 1.0:
        out.div_(max_value)
    if image_size is not None and tuple(out.shape[2:]) != (image_size, image_size):
        # antialias matters only when shrinking, where it avoids aliasing artefacts.
        out = F.interpolate(
            out,
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    return out


def _channel_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std in float64, two passes over bounded chunks.

    numpy reduces on one thread in a fixed order, so the statistics, and with them the
    normalised bytes that ``Dataset.fingerprint`` hashes, are the same in every process;
    torch's multithreaded reductions can change in the last bit with the thread count.
    """
    array = images.numpy()
    count = array.shape[0] * array.shape[2] * array.shape[3]
    channels = array.shape[1]
    if count == 0:
        return np.zeros(channels), np.ones(channels)
    total = np.zeros(channels)
    for start in range(0, len(array), _STATS_CHUNK):
        total += array[start : start + _STATS_CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(channels)
    for start in range(0, len(array), _STATS_CHUNK):
        block = array[start : start + _STATS_CHUNK].astype(np.float64) - mean[None, :, None, None]
        squares += np.square(block).sum(axis=(0, 2, 3))
    std = np.sqrt(squares / count)
    # A constant channel has no spread to normalise; dividing by 1 leaves it centred.
    std[std < 1e-12] = 1.0
    return mean, std


# ------------------------------------------------------------------------------------ digits


@register_dataset("digits")
def load_digits_dataset(
    root: Path | None,
    *,
    download: bool,
    val_fraction: float,
    seed: int,
    image_size: int | None,
) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, bundled with scikit-learn: always offline).

    There is no official test split, so a stratified 20% is held out as test first (seeded),
    then ``val_fraction`` of the rest as val. ``root`` and ``download`` are ignored.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:, None]  # [N, 1, 8, 8], values 0..16
    labels = bunch.target.astype(np.int64)
    keep, test = split_indices(labels, TEST_FRACTION, seed, what="digits")
    return make_dataset(
        "digits",
        images[keep],
        labels[keep],
        images[test],
        labels[test],
        class_names=tuple(str(digit) for digit in range(10)),
        source="scikit-learn load_digits (UCI optical digits, bundled with scikit-learn)",
        val_fraction=val_fraction,
        seed=seed,
        max_value=16.0,
        image_size=image_size,
    )


# ------------------------------------------------------------------------------ Fashion-MNIST

# IDX type codes (third magic byte) and the numpy dtypes they stand for; big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into an array, checking its magic number and size.

    The magic number is two zero bytes, a type code and the number of dimensions; then one
    big-endian uint32 per dimension, then the data. ``ndim`` is the dimension count the
    caller expects (3 for images, 1 for labels).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read {path} ({exc}); delete it and install or download the files again."
        ) from exc
    fix = "replace it with an intact copy (reinstall or download the dataset again)"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {data[:4].hex()}); {fix}.")
    dims_count = data[3]
    if ndim is not None and dims_count != ndim:
        raise DatasetError(
            f"{path} has a bad magic number {data[:4].hex()} ({dims_count} dimensions where "
            f"{ndim} were expected); {fix}."
        )
    offset = 4 + 4 * dims_count
    if len(data) < offset:
        raise DatasetError(f"{path} is truncated inside its header; {fix}.")
    dims = struct.unpack(f">{dims_count}I", data[4:offset])
    dtype = _IDX_DTYPES[data[2]]
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(
            f"{path} has {len(data)} bytes but its header {dims} implies {expected}; {fix}."
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def _find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST files in ``folder`` (plain preferred over .gz), or None."""
    found: dict[str, Path] = {}
    for stem in FASHION_FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def _download_fashion(root: Path | None) -> tuple[Path, dict[str, Path]]:
    target = root if root is not None else DEFAULT_DOWNLOAD_ROOT
    try:
        from torchvision.datasets import FashionMNIST

        folder = Path(FashionMNIST(str(target), train=True, download=True).raw_folder)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DatasetError(
            f"could not download fashion-mnist into {target} ({exc}); check the network "
            "connection, or install the Debian package dataset-fashion-mnist instead."
        ) from exc
    files = _find_idx_files(folder)
    if files is None:
        raise DatasetNotFoundError(
            f"torchvision downloaded fashion-mnist but the IDX files are not in {folder}; "
            "delete that folder and run again."
        )
    return folder, files


@register_dataset("fashion-mnist")
def load_fashion_mnist(
    root: Path | None,
    *,
    download: bool,
    val_fraction: float,
    seed: int,
    image_size: int | None,
) -> Dataset:
    """Fashion-MNIST from its four IDX files: 60k train (val held out from it), 10k test.

    Looked for in ``root`` (or torchvision's ``root/FashionMNIST/raw``), then in Debian's
    ``DEBIAN_FASHION_DIR``, then downloaded by torchvision if ``download`` is set. The files
    are parsed here with numpy (about a second) rather than through torchvision, so the
    Debian copy needs no torchvision layout.
    """
    places: list[tuple[Path, str]] = []
    if root is not None:
        places += [(root, ""), (root / "FashionMNIST" / "raw", "")]
    places.append((DEBIAN_FASHION_DIR, " (Debian package dataset-fashion-mnist)"))
    for folder, note in places:
        files = _find_idx_files(folder)
        if files is not None:
            source = f"{folder}{note}"
            if root is not None and folder == DEBIAN_FASHION_DIR:
                log.warning(
                    "dataset.root %s holds no Fashion-MNIST IDX files; using %s instead",
                    root,
                    folder,
                )
            break
    else:
        if not download:
            searched = ", ".join(str(folder) for folder, _ in places)
            raise DatasetNotFoundError(
                f"fashion-mnist files not found in {searched}; install the Debian package "
                "dataset-fashion-mnist (apt-get install dataset-fashion-mnist), pass "
                "dataset.root pointing to a folder with the IDX files, or set "
                "dataset.download: true to fetch them with torchvision."
            )
        folder, files = _download_fashion(root)
        source = f"{folder} (downloaded by torchvision)"

    arrays = {}
    for stem, path in files.items():
        arrays[stem] = read_idx(path, ndim=3 if "images" in stem else 1)
    for split in ("train", "t10k"):
        images_path = files[f"{split}-images-idx3-ubyte"]
        images = arrays[f"{split}-images-idx3-ubyte"]
        labels = arrays[f"{split}-labels-idx1-ubyte"]
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_path} holds {len(images)} images but its label file "
                f"{files[f'{split}-labels-idx1-ubyte']} holds {len(labels)} labels; "
                "replace both with matching copies."
            )
    return make_dataset(
        "fashion-mnist",
        arrays["train-images-idx3-ubyte"][:, None],
        arrays["train-labels-idx1-ubyte"],
        arrays["t10k-images-idx3-ubyte"][:, None],
        arrays["t10k-labels-idx1-ubyte"],
        class_names=FASHION_CLASSES,
        source=source,
        val_fraction=val_fraction,
        seed=seed,
        max_value=255.0,
        image_size=image_size,
    )


# ----------------------------------------------------------------------------------- CIFAR-10


@register_dataset("cifar10")
def load_cifar10(
    root: Path | None,
    *,
    download: bool,
    val_fraction: float,
    seed: int,
    image_size: int | None,
) -> Dataset:
    """CIFAR-10 through torchvision (50k train, val held out from it; 10k test), 3x32x32."""
    from torchvision.datasets import CIFAR10

    target = root if root is not None else DEFAULT_DOWNLOAD_ROOT
    try:
        train = CIFAR10(str(target), train=True, download=download)
        test = CIFAR10(str(target), train=False, download=download)
    except RuntimeError as exc:
        if not download:
            raise DatasetNotFoundError(
                f"cifar10 files not found in {target / CIFAR10.base_folder}; pass dataset.root "
                f"pointing to the folder that contains {CIFAR10.base_folder}, or set "
                "dataset.download: true to fetch them with torchvision."
            ) from exc
        raise DatasetError(
            f"cifar10 in {target} is missing or corrupt after downloading ({exc}); delete "
            f"{target / CIFAR10.base_folder} and run again."
        ) from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"could not download cifar10 into {target} ({exc}); check the network connection "
            "or pass dataset.root pointing to an existing copy."
        ) from exc
    return make_dataset(
        "cifar10",
        np.asarray(train.data).transpose(0, 3, 1, 2),  # NHWC uint8 -> NCHW
        np.asarray(train.targets),
        np.asarray(test.data).transpose(0, 3, 1, 2),
        np.asarray(test.targets),
        class_names=tuple(train.classes),
        source=f"{target / CIFAR10.base_folder} (torchvision CIFAR10)",
        val_fraction=val_fraction,
        seed=seed,
        max_value=255.0,
        image_size=image_size,
    )


# -------------------------------------------------------------------------------- imagefolder


# Folder names that mean a split, not a class: a root holding them is a split layout.
# Matched case-insensitively (Train/, TEST/ are split folders too).
TRAIN_FOLDERS = ("train", "training")
TEST_FOLDERS = ("test", "testing")
VAL_FOLDERS = ("val", "valid", "validation")
# Folders that are never a class: hidden ones (.ipynb_checkpoints) and macOS's zip debris.
_NOT_CLASSES = ("__MACOSX",)
# PIL modes read as one grayscale channel; any other 8-bit mode is read as RGB.
_GRAY_MODES = frozenset({"1", "L", "LA"})
# 16-bit and float modes: PIL's conversion to 8 bits clips them (a 16-bit image comes out
# nearly all white), so they are refused rather than silently ruined.
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class _ImageFiles:
    """One folder of class subfolders: the image paths, their labels and the classes."""

    folder: Path
    paths: list[str]
    labels: np.ndarray
    classes: list[str]


def _scan_image_folder(folder: Path) -> _ImageFiles:
    """The images under ``folder``, one visible subfolder per class (hidden ones such as
    ``.ipynb_checkpoints``, and ``__MACOSX``, are not classes; hidden files such as macOS's
    ``._photo.png`` are not images); every class must hold an image."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
    from torchvision.datasets.folder import make_dataset as find_images

    classes = sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and _visible(entry.name)
    )
    splits = [
        name for name in classes if name.lower() in (*TRAIN_FOLDERS, *TEST_FOLDERS, *VAL_FOLDERS)
    ]
    if splits:
        raise DatasetError(
            f"{folder} holds {', '.join(f'{name}/' for name in splits)} among its class "
            "folders; a split folder is not a class: put split folders only at dataset.root "
            "(root/train/<class>/, root/test/<class>/), or rename the class."
        )
    if not classes:
        raise DatasetNotFoundError(
            f"no class subfolders in {folder}; put the images in one subfolder per class "
            f"(e.g. {folder / 'cat'}/*.png)."
        )
    if len(classes) < 2:
        raise DatasetError(
            f"{folder} has one class subfolder ({classes[0]}); a classifier needs at least "
            "two: put the images in one subfolder per class."
        )
    samples = find_images(
        str(folder),
        {name: index for index, name in enumerate(classes)},
        is_valid_file=lambda path: (
            has_file_allowed_extension(path, IMG_EXTENSIONS) and _visible(Path(path).name)
        ),
        allow_empty=True,
    )
    counts = np.bincount([label for _, label in samples], minlength=len(classes))
    empty = [name for name, count in zip(classes, counts, strict=True) if count == 0]
    if empty:
        raise DatasetError(
            f"class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} in {folder} "
            f"hold{'' if len(empty) > 1 else 's'} no images ({', '.join(IMG_EXTENSIONS)}); "
            "add images or remove the folder."
        )
    return _ImageFiles(
        folder,
        [path for path, _ in samples],
        np.asarray([label for _, label in samples], dtype=np.int64),
        classes,
    )


def _image_mode(folders: list[_ImageFiles], image_size: int | None = None) -> str:
    """``"L"`` when every image is grayscale (one channel then, as for MNIST), else
    ``"RGB"``. Reads the files' headers only, and warns of what costs a device memory
    without the user having asked for it: a few colour files among grayscale ones (all are
    read as RGB then), and images resized to the default size from another one."""
    from PIL import Image

    colour: list[Path] = []
    sizes: Counter[tuple[int, int]] = Counter()
    for files in folders:
        for path in files.paths:
            try:
                with Image.open(path) as image:
                    mode, size = image.mode, image.size
            except OSError as exc:
                raise DatasetError(
                    f"cannot read image {path} ({exc}); remove or replace it."
                ) from exc
            if mode in _WIDE_MODES:
                raise DatasetError(
                    f"image {path} has 16-bit or float pixels (PIL mode {mode}), which would "
                    "be clipped to 8 bits; convert the images to 8-bit first."
                )
            if mode not in _GRAY_MODES:
                colour.append(Path(path))
            sizes[size] += 1
    total = sum(sizes.values())
    if colour and len(colour) * 10 <= total:  # a few strays, not a mixed dataset
        log.warning(
            "%d of %d images are colour (e.g. %s) and the rest grayscale: all are read as RGB, "
            "3 channels; if the data is grayscale, convert those to grayscale (mode L) and the "
            "models take one channel",
            len(colour),
            total,
            colour[0],
        )
    ((common, count),) = sizes.most_common(1)
    if image_size is None and common != (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE):
        log.warning(
            "the images are %dx%d (%d of %d) and are resized to %dx%d, dataset.image_size's "
            "default, which changes the models' activation memory with the pixels; set "
            "dataset.image_size to keep another size",
            *common,
            count,
            total,
            DEFAULT_IMAGE_SIZE,
            DEFAULT_IMAGE_SIZE,
        )
    return "RGB" if colour else "L"


def _read_images(files: _ImageFiles, size: int, mode: str) -> torch.Tensor:
    """The images as ``[N, C, size, size]`` in [0, 1]; decoded one by one into memory:
    meant for small datasets (thousands of images), not ImageNet."""
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    images = []
    for path in files.paths:
        try:
            with Image.open(path) as image:
                images.append(transform(image.convert(mode)))
        except OSError as exc:
            raise DatasetError(f"cannot read image {path} ({exc}); remove or replace it.") from exc
    return torch.stack(images)


def _first_folder(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first subfolder of ``root`` whose name, in any case, is one of ``names``."""
    found = {entry.name.lower(): entry for entry in root.iterdir() if entry.is_dir()}
    return next((found[name] for name in names if name in found), None)


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in _NOT_CLASSES


@register_dataset("imagefolder")
def load_image_folder(
    root: Path | None,
    *,
    download: bool,
    val_fraction: float,
    seed: int,
    image_size: int | None,
) -> Dataset:
    """Your own images: ``root/<class>/*.png``, or split folders ``root/train/<class>/``
    with ``test/`` and a val folder (``val/``, ``valid/`` or ``validation/``), each optional.

    - ``train/`` and ``test/``: those are the splits; the val folder is val if present, else
      val is held out from train.
    - ``train/`` and a val folder only: that folder is the held-out evaluation set and
      becomes test (the report's test accuracy is measured on it); val is held out from
      train.
    - ``train/`` alone, or no split folders: test (20%) and then val are held out from the
      images, stratified by class and seeded.

    Images are resized to ``image_size`` (default 32) by squashing to a square. They keep
    one channel when every image is grayscale, else all are read as RGB.
    """
    if root is None:
        raise DatasetNotFoundError(
            "the imagefolder dataset needs a folder: set dataset.root to a folder with one "
            "subfolder of images per class (optionally inside train/ and test/)."
        )
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"image folder {root.resolve()} does not exist; set dataset.root to a folder with "
            "one subfolder of images per class (optionally inside train/ and test/)."
        )
    size = image_size or DEFAULT_IMAGE_SIZE
    train_dir = _first_folder(root, TRAIN_FOLDERS)
    test_dir = _first_folder(root, TEST_FOLDERS)
    val_dir = _first_folder(root, VAL_FOLDERS)
    if train_dir is None and (test_dir or val_dir):
        found = ", ".join(f"{d.name}/" for d in (test_dir, val_dir) if d is not None)
        raise DatasetError(
            f"{root} has {found} but no train/; put the training images in "
            f"{root / 'train'}/<class>/ (or all images in {root}/<class>/)."
        )
    if train_dir is not None:
        if test_dir is None:
            test_dir, val_dir = val_dir, None
        train = _scan_image_folder(train_dir)
        held = [_scan_image_folder(d) for d in (test_dir, val_dir) if d is not None]
        for files in held:
            _check_same_classes(train.classes, train_dir, files.classes, files.folder)
    else:
        train, held = _scan_image_folder(root), []
    mode = _image_mode([train, *held], image_size)
    train_x, train_y = _read_images(train, size, mode), train.labels
    if mode == "RGB" and bool((train_x == train_x[:, :1]).all()):
        log.warning(
            "every training image in %s is grey (its three colour channels are equal): the "
            "models take 3 channels where one would do; save the images as grayscale (mode "
            "L) to load them with one",
            train.folder,
        )
    val_x = val_y = None
    if held:
        test_x, test_y = _read_images(held[0], size, mode), held[0].labels
        if len(held) == 2:
            val_x, val_y = _read_images(held[1], size, mode), held[1].labels
        used = f"{train.folder.name}/ as train, {held[0].folder.name}/ as test"
        if len(held) == 2:
            used += f", {held[1].folder.name}/ as val"
        source = f"{root} (image folders: {used}"
    else:
        keep, test = split_indices(train_y, TEST_FRACTION, seed, what=f"images in {train.folder}")
        test_x, test_y = train_x[torch.from_numpy(test)], train_y[test]
        train_x, train_y = train_x[torch.from_numpy(keep)], train_y[keep]
        where = f"{train.folder.name}/" if train.folder != root else "image folder"
        source = f"{root} ({where}, {TEST_FRACTION:.0%} held out as test by seed {seed}"
    colour = "grayscale, one channel" if mode == "L" else "RGB"
    source += f"; {colour})"
    return make_dataset(
        "imagefolder",
        train_x,
        train_y,
        test_x,
        test_y,
        class_names=tuple(train.classes),
        source=source,
        val_fraction=val_fraction,
        seed=seed,
        val_images=val_x,
        val_labels=val_y,
        loaded_as=(
            255.0,
            f"torchvision.transforms.Resize(({size}, {size})) on the decoded "
            f"{'grayscale' if mode == 'L' else 'RGB'} image (PIL convert('{mode}'); "
            "bilinear, antialiased, squashed to a square), before the pixel scale",
        ),
    )


def _check_same_classes(expected: list[str], where: Path, found: list[str], there: Path) -> None:
    # Labels are indices into the sorted class folders, so differing folders would silently
    # mean differing labels.
    if expected != found:
        raise DatasetError(
            f"the class subfolders of {there} ({', '.join(found)}) differ from those of "
            f"{where} ({', '.join(expected)}); give every split the same class subfolders."
        )
