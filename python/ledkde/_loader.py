"""Loads the compiled module after the OpenBLAS library it links against.

The library ships in the scipy-openblas32 wheel; the extension's RPATH points
at it, and loading it here by full path first makes the import work whatever
the site-packages layout.
"""

import ctypes
import os

import scipy_openblas32 as _ob

ctypes.CDLL(os.path.join(_ob.get_lib_dir(), _ob.get_library(fullname=True)), mode=ctypes.RTLD_GLOBAL)

from . import _core  # noqa: E402

__all__ = ["_core"]
