"""CIFAR-10 sources -> uint8 arrays (N, 32, 32, 3) with int labels, a decode cache, and splits.

Never imports TensorFlow: the Keras download is only touched when the `keras` source is asked for
and its cache is missing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core import settings
from cifar_core.errors import LabError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
LOSSY_SUFFIXES = {".jpg", ".jpeg"}
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "cifar-10-batches-py"
SYNTHETIC = "synthetic"
EXPECTED_LAYOUTS = (
    "an image folder with train/<class>/* and test/<class>/*, a cifar-10-batches-py folder "
    "(data_batch_1..5, test_batch), its cifar-10-python.tar.gz, 'keras' or 'synthetic'"
)


Progress = Callable[[int, int], None]
"""Called as progress(done, total) while a data set is decoded for the first time."""


class DataError(LabError):
    """A data source that cannot be read; the message names the path and what was expected."""


@dataclass
class Dataset:
    """CIFAR-10-shaped data held in memory, with where it came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    kind: str
    fingerprint: str

    @property
    def is_synthetic(self) -> bool:
        return self.kind == SYNTHETIC

    def same_test_images(self, recorded: dict) -> bool:
        """Whether these are the test images a run recorded (its run.json `data`): same files, or, where the files
        were copied or touched since, the same pixels and labels."""
        if self.fingerprint == recorded.get("fingerprint"):
            return True
        return bool(recorded.get("test_digest")) and self.test_digest() == recorded["test_digest"]

    def test_digest(self) -> str:
        """A hash of the test images and labels themselves: equal for the same test set wherever and whenever it
        was copied (the fingerprint also changes with file times, which is right for the decode cache only)."""
        digest = hashlib.blake2b(digest_size=8)
        digest.update(np.ascontiguousarray(self.x_test).tobytes())
        digest.update(np.asarray(self.y_test, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        """The facts a user needs to trust a result: source, kind, sizes, classes, fingerprints."""
        return {
            "source": self.source,
            "kind": self.kind,
            "train_images": int(len(self.y_train)),
            "test_images": int(len(self.y_test)),
            "classes": list(self.class_names),
            "fingerprint": self.fingerprint,
            "test_digest": self.test_digest(),
            "lossy": self.kind == "image-folder" and is_lossy_folder(Path(self.source)),
        }


def default_source() -> str:
    """`CIFAR_LAB_DATA` if set, else the Keras cache/download."""
    return settings.data_source()


def is_server_source(source: str) -> bool:
    """Whether `source` is data this process was started with (CIFAR_LAB_DATA, else the Keras cache) or the
    generated demo set: the only data a shared, read-only view opens, whatever a run file names."""
    if source == SYNTHETIC:
        return True
    server = default_source()
    if source == server:
        return True
    if "keras" in (source, server):
        return False
    return Path(source).expanduser().resolve() == Path(server).expanduser().resolve()


def cache_dir() -> Path:
    return settings.cache_dir()


def detect_kind(source: str) -> str:
    """Which loader reads `source`: image-folder, python-batches, tarball, keras or synthetic."""
    if source in ("keras", SYNTHETIC):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"Data path {path} does not exist. Point --data or CIFAR_LAB_DATA at {EXPECTED_LAYOUTS}."
        )
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz")):
            return "tarball"
        raise DataError(f"{path} is a file but not a .tar.gz archive. Expected {EXPECTED_LAYOUTS}.")
    if (path / "data_batch_1").exists() or (path / "cifar-10-batches-py").is_dir():
        return "python-batches"
    if (path / "train").is_dir() or (path / "test").is_dir():
        return "image-folder"
    raise DataError(f"{path} holds no CIFAR-10 data. Expected {EXPECTED_LAYOUTS}.")


def load_dataset(source: str | None = None, use_cache: bool = True, progress: Progress | None = None) -> Dataset:
    """Load CIFAR-10 from `source` (a path, 'keras' or 'synthetic'), decoding at most once per version;
    `progress` hears how the first decode of an image folder goes."""
    source = source or default_source()
    kind = detect_kind(source)
    if kind == SYNTHETIC:
        return synthetic_dataset()
    path = _resolve_path(source, kind)
    fingerprint = fingerprint_of(path, kind)
    cached = cache_dir() / f"{fingerprint}.npz"
    if use_cache and cached.exists():
        try:
            with np.load(cached) as z:
                arrays = tuple(z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
                names = tuple(str(c) for c in z["class_names"])
            return Dataset(*arrays, names, str(path), kind, fingerprint)
        except (OSError, ValueError, KeyError):
            cached.unlink(missing_ok=True)
    if kind == "image-folder":
        x_train, y_train, x_test, y_test, names = _load_image_folder(path, progress)
    else:
        loader = _load_tarball if kind == "tarball" else _load_batches_folder
        x_train, y_train, x_test, y_test, names = loader(path)
    if use_cache:
        _write_cache(cached, x_train, y_train, x_test, y_test, names)
    return Dataset(x_train, y_train, x_test, y_test, names, str(path), kind, fingerprint)


def summary(source: str | None = None) -> dict:
    """What `Dataset.describe()` says, without holding the images: from the decode cache when it has this
    version of the data (only labels are read), else by loading it once (which fills the cache)."""
    source = source or default_source()
    kind = detect_kind(source)
    if kind == SYNTHETIC:
        return {"source": SYNTHETIC, "kind": SYNTHETIC, "train_images": SYNTHETIC_SIZES[0],
                "test_images": SYNTHETIC_SIZES[1], "classes": list(CLASS_NAMES),
                "fingerprint": _synthetic_fingerprint(*SYNTHETIC_SIZES, 0)}
    path = _resolve_path(source, kind)
    fingerprint = fingerprint_of(path, kind)
    try:
        with np.load(cache_dir() / f"{fingerprint}.npz") as z:
            return {"source": str(path), "kind": kind, "train_images": len(z["y_train"]),
                    "test_images": len(z["y_test"]), "classes": [str(c) for c in z["class_names"]],
                    "fingerprint": fingerprint, "lossy": kind == "image-folder" and is_lossy_folder(path)}
    except (OSError, ValueError, KeyError):
        return load_dataset(source).describe()


def is_lossy_folder(path: Path) -> bool:
    """Whether an image folder holds JPEG files: pixels that differ from CIFAR-10's originals, so published
    figures (which come from the originals) are not matched exactly on it."""
    test = path / "test"
    first = next((d for d in sorted(test.iterdir()) if d.is_dir()), None) if test.is_dir() else None
    return first is not None and any(f.suffix.lower() in LOSSY_SUFFIXES for f in first.iterdir())


def _resolve_path(source: str, kind: str) -> Path:
    if kind != "keras":
        return Path(source).expanduser().resolve()
    if not KERAS_CACHE.is_dir():
        _keras_download()
    return KERAS_CACHE


def _keras_download() -> None:
    try:
        from keras.datasets import cifar10

        cifar10.load_data()
    except Exception as exc:  # network or archive errors: all lead to the same advice
        raise DataError(
            f"No CIFAR-10 found in the Keras cache ({KERAS_CACHE}) and the download failed ({exc}). "
            "Set CIFAR_LAB_DATA or --data to a local copy, or use 'synthetic' for a demo."
        ) from exc


def fingerprint_of(path: Path, kind: str) -> str:
    """`_fingerprint`, with a folder that cannot be walked (a symlink loop, no permission) named in a DataError."""
    try:
        return _fingerprint(path, kind)
    except OSError as exc:
        raise DataError(f"Cannot read {exc.filename or path}: {exc.strerror or exc}. Fix or remove it "
                        f"(a link that points to itself, say), or point --data elsewhere.") from None


def _fingerprint(path: Path, kind: str) -> str:
    """Hash of the path and of every file's name, size and mtime: changes whenever the data on disk changes.
    (os.walk with plain strings: 60,000 files take a fraction of a second.)"""
    digest = hashlib.sha256(f"{kind}\n{path}\n".encode())
    if path.is_file():
        st = path.stat()
        digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for root, dirs, files in os.walk(path) if path.is_dir() else ():
        dirs.sort()
        rel = os.path.relpath(root, path)
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            digest.update(f"{rel}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _write_cache(target: Path, x_train, y_train, x_test, y_test, names) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
    try:
        np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=np.array(names))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --- image folders ---------------------------------------------------------------------------

def _class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(f"Missing folder {split_dir}: an image folder needs train/<class>/ and test/<class>/.")
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<image files>.")
    return names


def _ordered_classes(names: list[str], where: Path) -> tuple[str, ...]:
    """The class folders in CIFAR-10's label order (names matched without regard to case: 'Cat' is cat); any other
    set of classes is refused, since every model, chart and published figure here is of CIFAR-10's ten."""
    by_name = {n.lower(): n for n in names}
    if len(by_name) == len(names) and set(by_name) == set(CLASS_NAMES):
        return tuple(by_name[c] for c in CLASS_NAMES)
    extra = sorted(n for n in names if n.lower() not in CLASS_NAMES)
    missing = [c for c in CLASS_NAMES if c not in by_name]
    raise DataError(f"{where} has {len(names)} class folders; CIFAR-10 needs exactly its ten: {', '.join(CLASS_NAMES)}"
                    f" (not expected: {extra or 'none'}; missing: {missing or 'none'}). Rename or remove folders.")


def _load_image_folder(path: Path, progress: Progress | None = None):
    train_names, test_names = _class_folders(path / "train"), _class_folders(path / "test")
    if train_names != test_names:
        only_train = sorted(set(train_names) - set(test_names))
        only_test = sorted(set(test_names) - set(train_names))
        raise DataError(
            f"Class folders differ between {path / 'train'} and {path / 'test'}: "
            f"only in train {only_train}, only in test {only_test}. Both need the same class folders."
        )
    folders = _ordered_classes(train_names, path / "train")
    train_files, y_train = _list_split(path / "train", folders)
    test_files, y_test = _list_split(path / "test", folders)
    images = _read_images(train_files + test_files, progress)
    return images[:len(train_files)], y_train, images[len(train_files):], y_test, CLASS_NAMES


def _list_split(split_dir: Path, names: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for label, name in enumerate(names):
        found = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{split_dir / name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype=np.int64)


def _read_images(files: list[Path], progress: Progress | None, chunk: int = 500) -> np.ndarray:
    """Decode every file, on as many threads as there are cores (Pillow releases the GIL while it decodes)."""
    from concurrent.futures import ThreadPoolExecutor

    from cifar_core.hardware import usable_cores

    images = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)

    def decode(start: int) -> int:
        for i in range(start, min(start + chunk, len(files))):
            images[i] = read_image(files[i])
        return min(start + chunk, len(files)) - start

    done = 0
    with ThreadPoolExecutor(max_workers=usable_cores()) as pool:
        for count in pool.map(decode, range(0, len(files), chunk)):
            done += count
            if progress:
                progress(done, len(files))
    return images


def read_image(file: Path) -> np.ndarray:
    """One 32x32 image as uint8 RGB; a clear error naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            if img.size != IMAGE_SHAPE[:2]:
                raise DataError(f"{file} is {img.size[0]}x{img.size[1]}; CIFAR-10 images must be 32x32.")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"Cannot read image {file}: {exc}. Remove or replace the file.") from exc


# --- Toronto python batches ----------------------------------------------------------------

BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _load_batches_folder(path: Path):
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    blobs = {}
    for name in BATCH_FILES:
        file = path / name
        if not file.exists():
            raise DataError(f"Missing {file}: a cifar-10-batches-py folder holds {', '.join(BATCH_FILES)}.")
        blobs[name] = file.read_bytes()
    return _decode_batches(blobs, str(path), _meta_names(path / "batches.meta"))


def _load_tarball(path: Path):
    blobs, meta = {}, None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                base = Path(member.name).name
                if base in BATCH_FILES or base == "batches.meta":
                    data = tar.extractfile(member).read()
                    if base == "batches.meta":
                        meta = data
                    else:
                        blobs[base] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"Cannot read archive {path}: {exc}. Download cifar-10-python.tar.gz again.") from exc
    missing = [n for n in BATCH_FILES if n not in blobs]
    if missing:
        raise DataError(f"Archive {path} lacks {', '.join(missing)}: it is not cifar-10-python.tar.gz.")
    names = _unpickle(meta, f"{path}:batches.meta")[b"label_names"] if meta else None
    return _decode_batches(blobs, str(path), _decode_names(names))


def _meta_names(meta: Path) -> tuple[str, ...]:
    if not meta.exists():
        return CLASS_NAMES
    return _decode_names(_unpickle(meta.read_bytes(), str(meta)).get(b"label_names"))


def _decode_names(names) -> tuple[str, ...]:
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names) if names else CLASS_NAMES


BATCH_GLOBALS = {  # all a CIFAR-10 batch holds besides dicts, lists, bytes and ints: numpy arrays
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Python's unpickler allowed only what CIFAR-10's batches are made of: a pickle naming any other callable
    (os.system, say) is refused before anything of it runs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in BATCH_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


class _Refused(pickle.UnpicklingError):
    """A pickle that names something a CIFAR-10 batch never holds."""


def _unpickle(data: bytes, where: str) -> dict:
    import io

    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DataError(f"{where} refused: it asks to run {exc}, which no CIFAR-10 batch holds (a crafted file?). "
                        "Use the original cifar-10-python.tar.gz.") from None
    except Exception as exc:  # truncated or foreign files raise many different errors
        raise DataError(f"{where} is truncated or not a CIFAR-10 batch ({exc}). Download it again.") from exc


def _decode_batches(blobs: dict[str, bytes], where: str, names: tuple[str, ...]):
    xs, ys = {}, {}
    for name, data in blobs.items():
        batch = _unpickle(data, f"{where}/{name}")
        try:
            x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            y = np.asarray(batch[b"labels"], dtype=np.int64)
        except (KeyError, ValueError) as exc:
            raise DataError(f"{where}/{name} is not a CIFAR-10 batch ({exc}). Download it again.") from exc
        if len(x) != len(y):
            raise DataError(f"{where}/{name} has {len(x)} images but {len(y)} labels: the file is damaged.")
        xs[name], ys[name] = x, y
    train = BATCH_FILES[:-1]
    return (np.concatenate([xs[n] for n in train]), np.concatenate([ys[n] for n in train]),
            xs["test_batch"], ys["test_batch"], names)


# --- synthetic ---------------------------------------------------------------------------------

SYNTHETIC_SIZES = (2000, 500)


def _synthetic_fingerprint(n_train: int, n_test: int, seed: int) -> str:
    return f"synthetic-{n_train}-{n_test}-{seed}"


def synthetic_dataset(n_train: int = SYNTHETIC_SIZES[0], n_test: int = SYNTHETIC_SIZES[1], seed: int = 0) -> Dataset:
    """Generated, learnable 10-class images: each class a colour and a stripe direction, plus noise.
    Like CIFAR-10, it has one hard pair: cat and dog share a colour and their stripes differ by only 9 degrees,
    so small models confuse them and the Misclassified page has something to show.

    For demos and tests only; every result made from it is labelled synthetic.
    """
    rng = np.random.default_rng(seed)
    x_train, y_train = _synthetic_split(rng, n_train)
    x_test, y_test = _synthetic_split(rng, n_test)
    return Dataset(x_train, y_train, x_test, y_test, CLASS_NAMES, SYNTHETIC, SYNTHETIC,
                   _synthetic_fingerprint(n_train, n_test, seed))


def _synthetic_split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    hues = np.array([[230, 60, 60], [60, 200, 60], [60, 60, 230], [220, 220, 60], [200, 60, 200],
                     [220, 220, 60], [240, 140, 40], [120, 120, 120], [250, 250, 250], [110, 60, 20]])
    yy, xx = np.mgrid[0:32, 0:32]
    angles = np.where(labels == 5, 3.5, labels) * np.pi / 10  # dog: cat's colour, stripes 9 degrees apart
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = np.sin((np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy) / 2.0
                  + phase[:, None, None])
    images = hues[labels][:, None, None, :] * (0.55 + 0.35 * wave[..., None])
    images += rng.normal(0, 25, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


# --- splits --------------------------------------------------------------------------------------

def stratified_subset(x: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` images with the class balance of `y`, chosen reproducibly by `seed`."""
    if n >= len(y):
        return x, y
    keep, _ = stratified_indices(y, n, seed)
    return x[keep], y[keep]


def split_validation(x: np.ndarray, y: np.ndarray, size: int, seed: int):
    """Hold out `size` stratified images for validation: (x_train, y_train, x_val, y_val)."""
    val, train = stratified_indices(y, size, seed)
    return x[train], y[train], x[val], y[val]


def stratified_indices(y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    classes = len(np.unique(y))
    stratify = y if classes <= n <= len(y) - classes else None
    chosen, rest = train_test_split(idx, train_size=n, random_state=seed, stratify=stratify)
    return np.sort(chosen), np.sort(rest)
