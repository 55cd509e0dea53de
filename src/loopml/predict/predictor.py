"""The ``Predictor``: the one interface every serving pattern calls.

A columnar batch goes in (a mapping of column name to values, a pandas DataFrame or
an Arrow table), arrays come out. Serving never sees the framework behind it. The
lifecycle is explicit: ``load()`` makes it ready, ``unload()`` releases it, and using
an unloaded predictor is an error that says why.

Output convention (by ``signature.task``):

- ``binary``: shape ``(n,)``, probability of the positive class;
- ``multiclass``: shape ``(n, k)``, class probabilities in ``signature.classes`` order;
- ``regression``: shape ``(n,)``, the predicted value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import NotFittedError
from loopml.core.signature import Signature

if TYPE_CHECKING:
    from loopml.registry.records import ModelVersion


class Predictor(ABC):
    """Columnar batch in, arrays out. Subclasses implement ``_load`` and ``_predict``.

    ``model_version`` is the registry record the predictor was loaded from (set by
    :func:`loopml.predict.load_predictor`), so serving can report exactly which
    artifact, by hash, answered a request.
    """

    flavour: str = "base"

    def __init__(self, signature: Signature, name: str = "model", version: int = 0) -> None:
        self.signature = signature
        self.name = name
        self.version = version
        self.model_version: ModelVersion | None = None
        self._ready = False

    @property
    def sha256(self) -> str | None:
        """The verified artifact hash when loaded from the registry, else None."""
        return self.model_version.sha256 if self.model_version is not None else None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._ready

    def load(self) -> Predictor:
        """Make the predictor ready to serve; idempotent."""
        if not self._ready:
            self._load()
            self._ready = True
        return self

    def unload(self) -> None:
        """Release the model; the predictor must be loaded again before use."""
        self._unload()
        self._ready = False

    def _load(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Override when loading does real work (e.g. opening an ONNX session)."""

    def _unload(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Override to release resources."""

    # -- prediction ----------------------------------------------------------------------
    def predict(self, batch: Mapping[str, Any] | Any) -> np.ndarray:
        """Validate ``batch`` against the signature and predict every row."""
        self._check_ready()
        columns = self.signature.validate(batch)
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            return np.zeros(self._empty_shape(), dtype=np.float64)
        return self._predict(columns)

    def _empty_shape(self) -> tuple[int, ...]:
        if self.signature.task == "multiclass":
            return (0, len(self.signature.classes or ()))
        return (0,)

    def _check_ready(self) -> None:
        if not self._ready:
            raise NotFittedError(
                f"predictor {self.name} v{self.version} is not loaded; call .load() first"
            )

    def predict_one(self, row: Mapping[str, Any]) -> Any:
        """Predict a single row given as ``{feature: value}``.

        Returns a float (binary, regression) or a 1-D array (multiclass). Flavours with
        a faster single-row path override this and must agree with :meth:`predict`.
        """
        out = self.predict({k: [v] for k, v in row.items()})
        return out[0]

    @abstractmethod
    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Predict from validated columns in signature order."""

    def __repr__(self) -> str:
        state = "ready" if self._ready else "not loaded"
        return f"{type(self).__name__}({self.name!r}, version={self.version}, {state})"
