"""Data loaders: embedded splits, the IDX and CIFAR readers on hand-made files, resize, stats."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.model.data import (
    DATASETS,
    DatasetError,
    channel_stats,
    load_images,
    normalise,
    resize,
    stratified_split,
)

# -- embedded sets ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_raw():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.reshape(-1, 1, 8, 8) / 16.0, bunch.target


def test_digits_split_matches_the_raw_data(digits_raw):
    raw_x, raw_y = digits_raw
    train = load_images("digits", "train", seed=3)
    test = load_images("digits", "test", seed=3)
    assert len(train) + len(test) == 1797
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.images.shape[1:] == (1, 8, 8) and train.num_classes == 10
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    train_idx, test_idx = stratified_split(raw_y, seed=3)
    np.testing.assert_array_equal(test.labels, raw_y[test_idx])
    np.testing.assert_allclose(test.images, raw_x[test_idx], rtol=0, atol=1e-7)
    np.testing.assert_allclose(train.images, raw_x[train_idx], rtol=0, atol=1e-7)


def test_split_is_fixed_by_the_seed_only(digits_raw):
    _, y = digits_raw
    a = load_images("digits", "test", seed=7)
    b = load_images("digits", "test", seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    a.images[:] = 0.5  # a caller's copy: changing it must not change the next load
    assert not np.array_equal(load_images("digits", "test", seed=7).images, a.images)
    assert np.array_equal(stratified_split(y, 7)[1], stratified_split(y, 7)[1])
    assert not np.array_equal(stratified_split(y, 7)[1], stratified_split(y, 8)[1])


def test_split_is_stratified(digits_raw):
    _, y = digits_raw
    train_idx, test_idx = stratified_split(y, seed=0)
    for c in range(10):
        n = int(np.sum(y == c))
        assert int(np.sum(y[test_idx] == c)) == round(0.2 * n)
        assert int(np.sum(y[train_idx] == c)) == n - round(0.2 * n)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=60), seed=st.integers(0, 2**32))
def test_split_partitions_every_index(labels, seed):
    y = np.array(labels)
    train_idx, test_idx = stratified_split(y, seed)
    both = np.concatenate([train_idx, test_idx])
    np.testing.assert_array_equal(np.sort(both), np.arange(y.size))
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(test_idx) > 0)
    for c in np.unique(y):
        assert int(np.sum(y[test_idx] == c)) == round(0.2 * int(np.sum(y == c)))
    np.testing.assert_array_equal(stratified_split(y, seed)[1], test_idx)


def test_mnist5k_resized_to_32():
    test = load_images("mnist5k", "test", size=32, seed=0)
    assert test.images.shape == (1000, 1, 32, 32) and test.images.dtype == np.float32
    assert test.images.min() >= 0.0 and test.images.max() <= 1.0
    assert np.bincount(test.labels).tolist() == [100] * 10


def test_unknown_set_and_split_are_refused():
    with pytest.raises(DatasetError, match="unknown data set 'svhn'"):
        load_images("svhn", "train")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_images("digits", "val")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="size must be a positive integer"):
        load_images("digits", "train", size=0)


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in ("digits", "mnist5k")])
def test_folder_sets_need_a_root(name, tmp_path):
    with pytest.raises(DatasetError, match=rf"'{name}' is not embedded.*root="):
        load_images(name, "train")
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="root '.*nowhere' does not exist"):
        load_images(name, "train", root=missing)
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match="root '.*file' is not a folder"):
        load_images(name, "train", root=tmp_path / "file")


# -- resize and normalisation -------------------------------------------------------------------


def test_resize_keeps_a_constant_image_constant():
    x = np.full((2, 3, 28, 28), 0.37, dtype=np.float32)
    y = resize(x, 32)
    assert y.shape == (2, 3, 32, 32) and y.dtype == np.float32
    np.testing.assert_allclose(y, 0.37, rtol=0, atol=1e-7)


def test_resize_is_bilinear_without_corner_alignment():
    # A 2-wide ramp [0, 1] upsampled to 4: sample points at source x = -0.25, 0.25, 0.75, 1.25,
    # clamped to the edge, give 0, 0.25, 0.75, 1.
    x = np.array([[[[0.0, 1.0], [0.0, 1.0]]]], dtype=np.float32)
    y = resize(x, 4)
    np.testing.assert_allclose(y[0, 0], np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-7)


def test_channel_stats_match_numpy_across_chunks():
    rng = np.random.default_rng(0)
    x = (rng.random((5000, 3, 2, 3)) * [[[0.5]], [[1.0]], [[0.1]]] + 0.2).astype(np.float32)
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-10)
    z = normalise(x, mean, std)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1.0, atol=1e-5)


def test_channel_stats_and_normalise():
    x = np.zeros((2, 2, 1, 2), dtype=np.float32)
    x[:, 0] = [[[0.0, 1.0]], [[1.0, 0.0]]]  # channel 0: values 0, 1, 1, 0 -> mean .5, std .5
    x[:, 1] = 0.25                          # channel 1: constant
    mean, std = channel_stats(x)
    assert mean == pytest.approx((0.5, 0.25)) and std == pytest.approx((0.5, 0.0))
    z = normalise(x, (0.5, 0.25), (0.5, 2.0))
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, 0], [[[-1.0, 1.0]], [[1.0, -1.0]]])
    np.testing.assert_allclose(z[:, 1], 0.0)
    with pytest.raises(ValueError, match="2 channel.*mean has 1"):
        normalise(x, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        normalise(x, (0.5, 0.25), (0.5, 0.0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        channel_stats(x[0])


# -- MNIST / Fashion-MNIST IDX files --------------------------------------------------------------

_IMAGES = np.array([[[0, 255, 7, 1, 2], [3, 4, 5, 6, 128], [9, 8, 7, 6, 5], [1, 1, 1, 1, 1]],
                    [[10, 20, 30, 40, 50], [60, 70, 80, 90, 100], [0] * 5, [255] * 5],
                    [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [0, 0, 9, 0, 0], [2] * 5]], dtype=np.uint8)
_LABELS = np.array([3, 0, 9], dtype=np.uint8)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def _write_idx(folder: Path, prefix: str, gz: bool = False) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, ndim, array in (("images", 3, _IMAGES), ("labels", 1, _LABELS)):
        path = folder / f"{prefix}-{kind}-idx{ndim}-ubyte{'.gz' if gz else ''}"
        data = _idx_bytes(array)
        if gz:
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_idx_reads_back_exactly(tmp_path, split, prefix):
    _write_idx(tmp_path, prefix)
    s = load_images("mnist", split, root=tmp_path)
    assert s.images.shape == (3, 1, 4, 5) and s.images.dtype == np.float32
    np.testing.assert_array_equal(s.images[:, 0], _IMAGES.astype(np.float32) / 255)
    np.testing.assert_array_equal(s.labels, [3, 0, 9])
    assert s.labels.dtype == np.int64 and s.split == split


def test_gzipped_idx_in_torchvision_layout(tmp_path):
    _write_idx(tmp_path / "FashionMNIST" / "raw", "t10k", gz=True)
    s = load_images("fashion-mnist", "test", root=tmp_path, size=8)
    assert s.images.shape == (3, 1, 8, 8) and s.name == "fashion-mnist"
    np.testing.assert_array_equal(s.labels, [3, 0, 9])


def test_idx_missing_file_is_named(tmp_path):
    images, _ = _write_idx(tmp_path, "train")
    with pytest.raises(DatasetError, match="'t10k-images-idx3-ubyte'.*not found"):
        load_images("mnist", "test", root=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="'train-labels-idx1-ubyte'.*not found"):
        load_images("mnist", "train", root=tmp_path)


def test_idx_bad_magic_is_named(tmp_path):
    images, labels = _write_idx(tmp_path, "train")
    images.write_bytes(_idx_bytes(_LABELS))  # a 1-D file where 3-D images belong
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte' has magic number "
                                           r"0x00000801, expected 0x00000803"):
        load_images("mnist", "train", root=tmp_path)


@pytest.mark.parametrize("cut", [2, 10, 1])
def test_idx_truncated_file_is_named(tmp_path, cut):
    images, _ = _write_idx(tmp_path, "train")
    data = images.read_bytes()
    images.write_bytes(data[:cut] if cut < 16 else data[:-cut])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte' is truncated"):
        load_images("mnist", "train", root=tmp_path)


def test_idx_truncated_gzip_is_named(tmp_path):
    images, _ = _write_idx(tmp_path, "train", gz=True)
    images.write_bytes(images.read_bytes()[:-12])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz.*damaged or truncated"):
        load_images("mnist", "train", root=tmp_path)


def test_idx_extra_bytes_and_count_mismatch(tmp_path):
    images, labels = _write_idx(tmp_path, "train")
    images.write_bytes(images.read_bytes() + b"\x00")
    with pytest.raises(DatasetError, match="longer than its header says"):
        load_images("mnist", "train", root=tmp_path)
    images.write_bytes(_idx_bytes(_IMAGES[:2]))
    with pytest.raises(DatasetError, match="2 images but .*3 labels"):
        load_images("mnist", "train", root=tmp_path)


def test_idx_label_out_of_range(tmp_path):
    _, labels = _write_idx(tmp_path, "train")
    labels.write_bytes(_idx_bytes(np.array([3, 10, 9], dtype=np.uint8)))
    with pytest.raises(DatasetError, match=r"labels span 3..10, expected 0..9"):
        load_images("mnist", "train", root=tmp_path)


# -- CIFAR pickles ---------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the published CIFAR batches are."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<I", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    import io

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # The published files name numpy's array constructor by its numpy 1 module path.
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _cifar_batch(seed: int, n: int, label_key: bytes, num_classes: int):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, size=n)]
    return {b"batch_label": b"batch", label_key: labels, b"data": data}


def _write_cifar10(folder: Path) -> dict[str, dict]:
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True)
    batches = {}
    for i, filename in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[filename] = _cifar_batch(i, 3 if filename != "data_batch_2" else 2, b"labels", 10)
        (base / filename).write_bytes(_py2_pickle(batches[filename]))
    return batches


def test_cifar10_reads_back_exactly(tmp_path):
    batches = _write_cifar10(tmp_path)
    train = load_images("cifar10", "train", root=tmp_path)
    want = np.concatenate([batches[f"data_batch_{k}"][b"data"] for k in range(1, 6)])
    assert train.images.shape == (14, 3, 32, 32) and train.images.dtype == np.float32
    np.testing.assert_array_equal(train.images, want.reshape(14, 3, 32, 32) / np.float32(255))
    np.testing.assert_array_equal(
        train.labels, sum((batches[f"data_batch_{k}"][b"labels"] for k in range(1, 6)), []))
    # root may also be the batches folder itself; pickles written by Python 3 are read too
    base = tmp_path / "cifar-10-batches-py"
    (base / "test_batch").write_bytes(pickle.dumps(batches["test_batch"], protocol=4))
    test = load_images("cifar10", "test", root=base, size=16)
    assert test.images.shape == (3, 3, 16, 16)
    np.testing.assert_array_equal(test.labels, batches["test_batch"][b"labels"])


def test_cifar100_uses_fine_labels(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    for i, filename in enumerate(["train", "test"]):
        batch = _cifar_batch(10 + i, 3, b"fine_labels", 100)
        batch[b"coarse_labels"] = [0, 1, 2]
        batch[b"fine_labels"][0] = 99
        (base / filename).write_bytes(_py2_pickle(batch))
    s = load_images("cifar100", "test", root=tmp_path)
    assert s.num_classes == 100
    np.testing.assert_array_equal(s.labels, batch[b"fine_labels"])
    np.testing.assert_array_equal(s.images.reshape(3, -1) * 255, batch[b"data"])


def test_cifar_missing_batch_is_named(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match=r"data_batch_3' not found.*cifar-10-batches-py"):
        load_images("cifar10", "train", root=tmp_path)


def test_cifar_truncated_batch_is_named(tmp_path):
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"test_batch' is not a readable CIFAR batch.*truncated"):
        load_images("cifar10", "test", root=tmp_path)


def test_cifar_wrong_contents_are_named(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    (base / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8),
                                                   "labels": [0, 1]}))
    with pytest.raises(DatasetError, match=r"test_batch' 'data' is uint8 \(2, 10\)"):
        load_images("cifar10", "test", root=tmp_path)
    (base / "test_batch").write_bytes(pickle.dumps({"images": 1}))
    with pytest.raises(DatasetError, match=r"lacks key 'data' or 'labels'"):
        load_images("cifar10", "test", root=tmp_path)


class _Payload:
    """Unpickling this would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cifar_pickle_cannot_run_code(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    marker = tmp_path / "pwned"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Payload(marker)}
    (base / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError, match=r"test_batch' is refused: global "
                                           r"pathlib.*Path.touch is not allowed"):
        load_images("cifar10", "test", root=tmp_path)
    assert not marker.exists()
    # a harmless-looking global outside the allowed set is refused too
    from collections import OrderedDict

    (base / "test_batch").write_bytes(pickle.dumps(OrderedDict(data=1), protocol=4))
    with pytest.raises(DatasetError, match="is refused: global collections.OrderedDict"):
        load_images("cifar10", "test", root=tmp_path)
