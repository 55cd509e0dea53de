"""LightGBM's single-row fast C entry point, wrapped for one booster.

``Booster.predict`` re-parses parameters and allocates per call, about a millisecond
for one row. ``LGBM_BoosterPredictForMatSingleRowFastInit`` does that setup once;
each ``LGBM_BoosterPredictForMatSingleRowFast`` call then costs the tree walk plus a
few microseconds. The function prototypes are declared on a private handle to the
library so LightGBM's own ctypes declarations are left untouched.
"""

from __future__ import annotations

import ctypes
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
            from lightgbm.basic import _LIB as lightgbm_lib

            lib = ctypes.CDLL(lightgbm_lib._name)
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
