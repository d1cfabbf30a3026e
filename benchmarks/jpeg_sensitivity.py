"""How much each model loses when its test images lose more detail to JPEG: test accuracy on the test set as it
is, and re-encoded at lower JPEG qualities, per run and per architecture.

    python benchmarks/jpeg_sensitivity.py RUN [RUN ...] [--runs-dir DIR] [--qualities 75,50,30]

Why: ../shared's CIFAR-10 copy is JPEG at quality 75 (median PSNR about 30.7 dB against the original pixels), and
its README warns that accuracies on it run below those on the original arrays. We cannot train on the originals
here, so this measures the next best thing: which architectures depend most on the fine detail JPEG removes.
It measures a shift at test time only (training saw the copy as it is); a model with batch norm may lose also
because its normalization statistics no longer fit the re-encoded images.
"""

from __future__ import annotations

import argparse
import io
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_core import data, hardware
from cifar_core.store import runs


def reencode(images: np.ndarray, quality: int) -> np.ndarray:
    """Every image saved as JPEG at `quality` (Pillow's defaults otherwise) and decoded again."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Median over images of the peak signal-to-noise ratio in dB."""
    mse = ((a.astype(np.float64) - b) ** 2).reshape(len(a), -1).mean(1)
    return float(np.median(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))))


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x, batch_size=500, verbose=0).argmax(1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run ids (or unique prefixes); all on the same data")
    parser.add_argument("--runs-dir", type=Path, default=runs.default_runs_dir())
    parser.add_argument("--qualities", default="75,50,30", help="JPEG qualities to re-encode the test set at")
    args = parser.parse_args()
    from cifar_core.engine import trainer

    infos = [runs.find_run(args.runs_dir, ref) for ref in args.runs]
    dataset = data.load_dataset(infos[0].data["source"])
    x, y = dataset.x_test, dataset.y_test
    qualities = [int(q) for q in args.qualities.split(",")]
    versions = {"as is": x, **{f"q{q}": reencode(x, q) for q in qualities}}
    print(hardware.describe_machine())
    print(f"test set {infos[0].data['source']} ({len(y):,} images); re-encoded with Pillow, median PSNR against it: "
          + ", ".join(f"{name} {psnr(x, v):.1f} dB" for name, v in versions.items() if name != "as is"))
    drops: dict[str, dict[str, list[float]]] = {}
    for info in infos:
        model = trainer.load_model(info.path)
        scores = {name: accuracy(model, v, y) for name, v in versions.items()}
        arch = info.meta["spec"]["name"]
        for name in versions:
            drops.setdefault(arch, {}).setdefault(name, []).append(scores["as is"] - scores[name])
        print(f"{info.run_id} ({arch}): " + ", ".join(f"{name} {acc:.4f}" for name, acc in scores.items()), flush=True)
    print("\nmean loss of test accuracy against 'as is', per architecture:")
    for arch, by_version in drops.items():
        n = len(by_version["as is"])
        print(f"  {arch} ({n} run{'s' * (n > 1)}): " + ", ".join(
            f"{name} -{statistics.mean(d):.4f}" for name, d in by_version.items() if name != "as is"))


if __name__ == "__main__":
    main()
