"""Every data source, the decode cache, the splits, and each bad input's message."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folder
from PIL import Image

from cifar_core import data
from cifar_core.analysis import caveats
from cifar_core.data import DataError


@pytest.fixture(scope="module")
def small():
    return data.synthetic_dataset(n_train=60, n_test=20, seed=3)


def write_batches(folder: Path, ds: data.Dataset) -> Path:
    folder.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(ds.y_train)), 5)
    for i, idx in enumerate(chunks, start=1):
        _dump(folder / f"data_batch_{i}", ds.x_train[idx], ds.y_train[idx])
    _dump(folder / "test_batch", ds.x_test, ds.y_test)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [n.encode() for n in data.CLASS_NAMES]}, fh)
    return folder


def _dump(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with open(path, "wb") as fh:
        pickle.dump({b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": list(map(int, y))}, fh)


def assert_same(loaded: data.Dataset, ds: data.Dataset) -> None:
    assert loaded.x_train.shape == ds.x_train.shape and loaded.x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.sort(loaded.y_train), np.sort(ds.y_train))
    def checksums(x):
        return np.sort(x.reshape(len(x), -1).astype(np.int64).sum(axis=1))

    np.testing.assert_array_equal(checksums(loaded.x_train), checksums(ds.x_train))
    np.testing.assert_array_equal(checksums(loaded.x_test), checksums(ds.x_test))
    assert loaded.class_names == data.CLASS_NAMES


def test_python_batches_folder_round_trips_pixels(tmp_path, small):
    loaded = data.load_dataset(str(write_batches(tmp_path / "cifar-10-batches-py", small)))
    assert loaded.kind == "python-batches"
    np.testing.assert_array_equal(loaded.x_train, small.x_train)
    np.testing.assert_array_equal(loaded.y_test, small.y_test)


def test_parent_of_batches_folder_is_accepted(tmp_path, small):
    write_batches(tmp_path / "cifar-10-batches-py", small)
    np.testing.assert_array_equal(data.load_dataset(str(tmp_path)).x_test, small.x_test)


def test_tarball(tmp_path, small):
    folder = write_batches(tmp_path / "cifar-10-batches-py", small)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    loaded = data.load_dataset(str(archive))
    assert loaded.kind == "tarball"
    np.testing.assert_array_equal(loaded.x_train, small.x_train)


def test_image_folder_in_cifar_label_order(tmp_path, small):
    root = write_image_folder(tmp_path / "imgs", small.x_train, small.y_train, small.x_test, small.y_test,
                              data.CLASS_NAMES)
    loaded = data.load_dataset(str(root))
    assert loaded.kind == "image-folder"
    assert_same(loaded, small)
    first_cat = np.flatnonzero(small.y_train == 3)[0]
    assert any((loaded.x_train[loaded.y_train == 3] == small.x_train[first_cat]).all(axis=(1, 2, 3)))


def test_keras_source_reads_the_keras_cache(tmp_path, small, monkeypatch):
    monkeypatch.setattr(data, "KERAS_CACHE", write_batches(tmp_path / "keras" / "cifar-10-batches-py", small))
    loaded = data.load_dataset("keras")
    assert loaded.kind == "keras"
    np.testing.assert_array_equal(loaded.x_train, small.x_train)


def test_env_variable_picks_the_source(tmp_path, small, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_DATA", str(write_batches(tmp_path / "b", small)))
    assert data.load_dataset().kind == "python-batches"


def test_synthetic_is_learnable_shape_and_labelled():
    ds = data.load_dataset("synthetic")
    assert ds.is_synthetic and ds.x_train.shape == (2000, 32, 32, 3) and ds.x_test.shape == (500, 32, 32, 3)
    assert np.bincount(ds.y_train).tolist() == [200] * 10
    means = [tuple(np.round(ds.x_train[ds.y_train == c].mean(axis=(0, 1, 2)), -1)) for c in range(10)]
    cat, dog = data.CLASS_NAMES.index("cat"), data.CLASS_NAMES.index("dog")
    assert means[cat] == means[dog], "cat and dog share a colour: the hard pair, as in CIFAR-10"
    assert len(set(means)) == 9, "every other class has a colour of its own"


def test_second_load_comes_from_the_cache(tmp_path, small, monkeypatch):
    source = str(write_batches(tmp_path / "b", small))
    data.load_dataset(source)
    monkeypatch.setattr(data, "_load_batches_folder", lambda path: pytest.fail("decoded twice"))
    np.testing.assert_array_equal(data.load_dataset(source).x_train, small.x_train)


def test_cache_is_invalidated_when_files_change(tmp_path, small):
    root = write_image_folder(tmp_path / "imgs", small.x_train, small.y_train, small.x_test, small.y_test,
                              data.CLASS_NAMES)
    before = data.load_dataset(str(root))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "cat" / "extra.png")
    after = data.load_dataset(str(root))
    assert after.fingerprint != before.fingerprint and len(after.y_train) == len(before.y_train) + 1


def test_real_jpegs(jpeg_sample):
    ds = data.load_dataset(str(jpeg_sample))
    assert ds.x_train.shape == (300, 32, 32, 3) and ds.x_test.shape == (100, 32, 32, 3)
    assert np.bincount(ds.y_test).tolist() == [10] * 10


def test_a_jpeg_folder_is_called_lossy_and_a_seed_study_on_it_says_so(tmp_path, small, jpeg_sample):
    """JPEG's pixels differ from CIFAR-10's originals, which the published figures come from."""
    png = write_image_folder(tmp_path / "png", small.x_train, small.y_train, small.x_test, small.y_test,
                             data.CLASS_NAMES)
    assert data.load_dataset(str(jpeg_sample)).describe()["lossy"] and data.summary(str(jpeg_sample))["lossy"]
    assert not data.load_dataset(str(png)).describe()["lossy"] and not data.summary(str(png))["lossy"]
    assert not data.synthetic_dataset().describe()["lossy"]
    seed_study = {"kind": "seed", "data": data.summary(str(jpeg_sample))}
    assert caveats.LOSSY_COPY in caveats.for_study(seed_study)
    assert caveats.LOSSY_COPY not in caveats.for_study({**seed_study, "kind": "depth"})


# --- bad input ------------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*CIFAR_LAB_DATA"):
        data.load_dataset(str(tmp_path / "nope"))


def test_wrong_layout(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match=r"holds no CIFAR-10 data. Expected an image folder"):
        data.load_dataset(str(tmp_path))


def test_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_text("hi")
    with pytest.raises(DataError, match="not a .tar.gz"):
        data.load_dataset(str(tmp_path / "x.zip"))


def test_missing_test_folder(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Missing folder .*test"):
        data.load_dataset(str(tmp_path))


def test_class_folders_differ(tmp_path, small):
    root = write_image_folder(tmp_path / "imgs", small.x_train[:4], small.y_train[:4] * 0,
                              small.x_test[:2], small.y_test[:2] * 0, ("cat", "dog"))
    (root / "test" / "dog").rename(root / "test" / "wolf")
    with pytest.raises(DataError, match=r"only in train \['dog'\], only in test \['wolf'\]"):
        data.load_dataset(str(root))


def test_unreadable_image_is_named(tmp_path, small):
    root = write_image_folder(tmp_path / "imgs", small.x_train, small.y_train, small.x_test, small.y_test,
                              data.CLASS_NAMES)
    bad = root / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"Cannot read image .*broken.jpg"):
        data.load_dataset(str(root))


def test_wrong_size_image_is_named(tmp_path, small):
    root = write_image_folder(tmp_path / "imgs", small.x_train, small.y_train, small.x_test, small.y_test,
                              data.CLASS_NAMES)
    Image.new("RGB", (64, 48)).save(root / "test" / "ship" / "big.png")
    with pytest.raises(DataError, match=r"big.png is 64x48; CIFAR-10 images must be 32x32"):
        data.load_dataset(str(root))


def test_truncated_batch_file_is_named(tmp_path, small):
    folder = write_batches(tmp_path / "b", small)
    blob = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"data_batch_3 is truncated or not a CIFAR-10 batch"):
        data.load_dataset(str(folder))


def test_missing_batch_file(tmp_path, small):
    folder = write_batches(tmp_path / "b", small)
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"Missing .*test_batch"):
        data.load_dataset(str(folder))


def test_archive_without_batches(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(DataError, match="lacks data_batch_1"):
        data.load_dataset(str(archive))


# --- splits ---------------------------------------------------------------------------------------

def test_validation_split_is_stratified_and_seeded():
    ds = data.synthetic_dataset()
    x_tr, y_tr, x_val, y_val = data.split_validation(ds.x_train, ds.y_train, 500, seed=1)
    assert len(y_val) == 500 and len(y_tr) == 1500
    assert np.bincount(y_val).tolist() == [50] * 10
    again = data.split_validation(ds.x_train, ds.y_train, 500, seed=1)
    np.testing.assert_array_equal(again[3], y_val)
    np.testing.assert_array_equal(again[2], x_val)
    other = data.split_validation(ds.x_train, ds.y_train, 500, seed=2)
    assert not np.array_equal(other[2], x_val)


def test_subset_keeps_class_balance():
    ds = data.synthetic_dataset()
    _, y = data.stratified_subset(ds.x_train, ds.y_train, 300, seed=0)
    assert np.bincount(y).tolist() == [30] * 10


def test_a_copied_or_touched_test_set_is_still_the_same_test_images(small):
    recorded = small.describe()
    assert small.same_test_images(recorded)
    assert small.same_test_images({**recorded, "fingerprint": "touched-since"}), "same pixels, other file times"
    assert not small.same_test_images({"fingerprint": "touched-since", "test_digest": "other-images"})
    assert not small.same_test_images({"fingerprint": "touched-since"}), "an old run without a digest: can't tell"
