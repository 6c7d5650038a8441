"""The pictures of the command line and the experiments: 8-bit PNG writers with no
dependencies (sample grids with labels, scatter plots of 2-D data) and matplotlib, loaded
once, for the experiments' plots."""

from __future__ import annotations

import struct
import zlib

import numpy as np


class Skipped(Exception):
    """An experiment that cannot run here (missing data or matplotlib); the message says why."""


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), or Skipped when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise Skipped("plots need matplotlib: pip install matplotlib (or ledkde[experiments])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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
    indices (n,)]); titles : one label per run; shape : (H, W) of an image.
    """
    # Small images are enlarged (by whole pixels) to at least 28 pixels tall, so that they
    # can be seen and the labels beside them (10 pixels tall) never touch.
    zoom = max(1, -(-28 // shape[0]))
    h, w = shape[0] * zoom, shape[1] * zoom
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
                    big = np.kron(im.reshape(shape), np.ones((zoom, zoom)))
                    panel[y0:y0 + h, x0:x0 + w] = 1.0 - np.clip(big, 0.0, 1.0)
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
