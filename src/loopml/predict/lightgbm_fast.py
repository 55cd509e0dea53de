"""LightGBM through its C library: a booster without the Python package, and the
single-row fast entry point.

``import lightgbm`` also imports scikit-learn, pandas and SciPy (about 185 MiB per
serving worker, and seconds of start-up); serving needs only ``lib_lightgbm``.
:class:`CBooster` loads a model text and predicts float64 matrices with it.

``Booster.predict`` re-parses parameters and allocates per call, about a millisecond
for one row. ``LGBM_BoosterPredictForMatSingleRowFastInit`` does that setup once;
each ``LGBM_BoosterPredictForMatSingleRowFast`` call then costs the tree walk plus a
few microseconds. The function prototypes are declared on a private handle to the
library so LightGBM's own ctypes declarations are left untouched.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
import weakref
from typing import Any

import numpy as np

from loopml.core.errors import LoopmlError

_C_API_PREDICT_NORMAL = 0
_C_API_DTYPE_FLOAT64 = 1
_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


def _lib() -> ctypes.CDLL:
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            lib = ctypes.CDLL(_library_path())
            lib.LGBM_BoosterPredictForMatSingleRowFastInit.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int32,
                ctypes.c_char_p,
                ctypes.POINTER(ctypes.c_void_p),
            ]
            lib.LGBM_BoosterPredictForMatSingleRowFast.argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_int64),
                ctypes.POINTER(ctypes.c_double),
            ]
            lib.LGBM_FastConfigFree.argtypes = [ctypes.c_void_p]
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _LIB = lib
        return _LIB


def _library_path() -> str:
    """lib_lightgbm inside the installed package, found without importing the package."""
    from pathlib import Path

    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise LoopmlError("LightGBM is not installed: pip install lightgbm")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = [*root.glob("lib/lib_lightgbm.*"), *root.glob("lib_lightgbm.*")]
    if not found:
        raise LoopmlError(f"lib_lightgbm not found under {root}; reinstall lightgbm")
    return str(found[0])


def _check(lib: ctypes.CDLL, code: int, what: str) -> None:
    if code != 0:
        detail = lib.LGBM_GetLastError().decode(errors="replace")
        raise LoopmlError(f"LightGBM {what} failed: {detail}")


def _free(lib: ctypes.CDLL, handle: ctypes.c_void_p, booster: Any) -> None:
    """Release the fast config; ``booster`` is held until then so its handle outlives it."""
    if handle.value:
        lib.LGBM_FastConfigFree(handle)
        handle.value = None
    del booster


class CBooster:
    """A LightGBM model loaded from its text through the C library.

    >>> from lightgbm import LGBMClassifier
    >>> X = np.random.default_rng(0).normal(size=(200, 3)); y = X[:, 0] > 0
    >>> model = LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    >>> booster = CBooster(model.booster_.model_to_string())
    >>> bool(np.array_equal(booster.predict(X), model.predict_proba(X)[:, 1]))
    True
    """

    def __init__(self, model_text: str) -> None:
        lib = _lib()
        self._handle = ctypes.c_void_p()
        iterations, classes, features = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        _check(
            lib,
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode()),
                ctypes.byref(iterations),
                ctypes.byref(self._handle),
            ),
            "model load",
        )
        self._finalizer = weakref.finalize(self, lib.LGBM_BoosterFree, self._handle)
        _check(lib, lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(classes)), "classes")
        _check(lib, lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)), "features")
        self.num_class = max(1, classes.value)
        self.num_feature = features.value

    def predict(self, matrix: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Model output per row: ``(n,)``, or ``(n, k)`` for k classes."""
        lib = _lib()
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.num_feature:
            raise LoopmlError(
                f"LightGBM model expects {self.num_feature} features per row, got shape "
                f"{matrix.shape}"
            )
        n = matrix.shape[0]
        out = np.empty(n * self.num_class, dtype=np.float64)
        out_len = ctypes.c_int64()
        params = b"" if num_threads is None else f"num_threads={num_threads}".encode()
        _check(
            lib,
            lib.LGBM_BoosterPredictForMat(
                self._handle,
                matrix.ctypes.data_as(ctypes.c_void_p),
                _C_API_DTYPE_FLOAT64,
                ctypes.c_int32(n),
                ctypes.c_int32(self.num_feature),
                1,
                _C_API_PREDICT_NORMAL,
                0,
                -1,
                ctypes.c_char_p(params),
                ctypes.byref(out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            ),
            "prediction",
        )
        return out if self.num_class == 1 else out.reshape(n, self.num_class)


class FastRowPredictor:
    """Predict one row at a time with a prepared LightGBM fast config.

    The input and output buffers are allocated once and their addresses cached
    (``ndarray.ctypes`` costs microseconds per access; the input is a ctypes array
    because copying a list of floats into it is several times faster than into an
    ndarray). Calls are serialised by a lock: the buffers and fast config are shared.
    """

    def __init__(self, booster: Any, n_features: int, n_outputs: int, threads: int = 1) -> None:
        lib = _lib()
        self._lib = lib
        self._handle = ctypes.c_void_p()
        params = f"num_threads={threads}".encode()
        code = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            _C_API_PREDICT_NORMAL,
            0,
            -1,
            _C_API_DTYPE_FLOAT64,
            n_features,
            params,
            ctypes.byref(self._handle),
        )
        _check(lib, code, "fast predictor setup")
        self.n_features = n_features
        self._in = (ctypes.c_double * n_features)()
        self._in_ptr = ctypes.cast(self._in, ctypes.c_void_p)
        self._in_np = np.frombuffer(self._in, dtype=np.float64)
        self._out = np.zeros(n_outputs, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._out_len_ref = ctypes.byref(self._out_len)
        self._call = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _free, lib, self._handle, booster)

    def _run(self, row: Any) -> None:
        """Copy ``row`` into the input buffer and call LightGBM; the caller holds the lock."""
        if self._closed:
            raise LoopmlError("the LightGBM fast predictor was closed; load the model again")
        if type(row) is list:
            self._in[:] = row  # a ctypes slice copy of floats: ~4x faster than numpy's
        else:
            self._in_np[:] = row
        code = self._call(self._handle, self._in_ptr, self._out_len_ref, self._out_ptr)
        if code != 0:
            _check(self._lib, code, "single-row prediction")

    def predict(self, row: Any) -> np.ndarray:
        """Raw model output for one row (``n_features`` numbers), as a new array."""
        with self._lock:
            self._run(row)
            return self._out.copy()

    def predict_scalar(self, row: Any) -> float:
        """The single output of a binary or regression model for one row."""
        with self._lock:
            self._run(row)
            return float(self._out[0])

    def close(self) -> None:
        """Free the fast config now rather than at garbage collection."""
        with self._lock:
            self._closed = True
            self._finalizer()
