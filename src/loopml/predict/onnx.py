"""The ONNX Runtime flavour of :class:`~loopml.predict.predictor.Predictor`.

An exported model (pattern 3, edge) must run where neither scikit-learn nor LightGBM
exists, so this module imports only numpy and onnxruntime, and onnxruntime only when
the predictor is loaded. Graphs written by :mod:`loopml.serve.edge.convert` take one
``[n, 1]`` input per signature column (``float`` for numbers, ``string`` for
categories) and end in ``probabilities`` (classification) or ``variable``
(regression), so the same feed works in onnxruntime-web in a browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from loopml.core.errors import IntegrityError, ValidationError
from loopml.core.hashing import sha256_bytes
from loopml.core.signature import Signature
from loopml.predict.flavours import Flavour
from loopml.predict.predictor import Predictor

#: Key under which the exporter stores the input signature in the ONNX metadata.
SIGNATURE_KEY = "loopml.signature"
#: ONNX output names the exporter guarantees.
PROBABILITIES, VARIABLE = "probabilities", "variable"


class OnnxPredictor(Predictor):
    """Run an exported ONNX graph with ONNX Runtime.

    Parameters
    ----------
    signature:
        The input signature; columns are fed to the graph input of the same name.
    model:
        The ``.onnx`` bytes, or a path to the file.
    expected_sha256:
        When given, ``load()`` refuses bytes whose hash differs (a tampered file).
    threads:
        ONNX Runtime intra-op threads. One is fastest for single rows and small
        batches and leaves the other cores to the rest of the process.

    Examples
    --------
    >>> p = OnnxPredictor(Signature(()), b"", name="ctr", version=3)
    >>> p
    OnnxPredictor('ctr', version=3, not loaded)
    """

    flavour = "onnx"

    def __init__(
        self,
        signature: Signature,
        model: bytes | str | Path,
        name: str = "model",
        version: int = 0,
        expected_sha256: str | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__(signature, name=name, version=version)
        self.model = model
        self.expected_sha256 = expected_sha256
        self.threads = threads
        self._session: Any = None
        self._output: str | None = None
        self._inputs: set[str] = set()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        name: str = "model",
        version: int = 0,
        expected_sha256: str | None = None,
    ) -> OnnxPredictor:
        """Build a predictor from a self-describing ``.onnx`` written by loopml's exporter.

        The signature is read from the graph's metadata, so the file alone is enough.
        """
        import onnx

        proto = onnx.load_from_string(data)
        props = {p.key: p.value for p in proto.metadata_props}
        if SIGNATURE_KEY not in props:
            raise ValidationError(
                f"the ONNX model has no {SIGNATURE_KEY!r} metadata, so its inputs are unknown; "
                "export it with `loopml export edge` or pass the signature to OnnxPredictor",
                field="model",
            )
        signature = Signature.from_dict(json.loads(props[SIGNATURE_KEY]))
        return cls(signature, data, name=name, version=version, expected_sha256=expected_sha256)

    # -- lifecycle ---------------------------------------------------------------------
    def _load(self) -> None:
        import onnxruntime as ort

        data = self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()
        want = self.expected_sha256
        if want is not None and sha256_bytes(data) != want:
            raise IntegrityError(
                f"ONNX model for {self.name} v{self.version} has sha256 "
                f"{sha256_bytes(data)[:12]}... but {want[:12]}... was recorded: the file "
                "was modified; refusing to load it. Export the bundle again.",
                model=self.name,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        inputs = {i.name for i in session.get_inputs()}
        unknown = sorted(inputs - set(self.signature.names))
        if unknown:
            raise ValidationError(
                f"ONNX graph input(s) {unknown} are not columns of the signature "
                f"{self.signature.names}; the model was not exported by loopml or the "
                "signature belongs to another model",
                field="signature",
            )
        outputs = [o.name for o in session.get_outputs()]
        wanted = VARIABLE if self.signature.task == "regression" else PROBABILITIES
        if wanted not in outputs:
            raise ValidationError(
                f"ONNX graph has outputs {outputs} but a {self.signature.task} model needs "
                f"{wanted!r}; re-export it with `loopml export edge`",
                field="model",
            )
        self._session, self._output, self._inputs = session, wanted, inputs

    def _unload(self) -> None:
        self._session = None

    # -- prediction ----------------------------------------------------------------------
    def feed(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ONNX Runtime input feed for validated columns (also used by benchmarks)."""
        out: dict[str, np.ndarray] = {}
        for spec in self.signature.inputs:
            if spec.name not in self._inputs:  # a column the graph does not use
                continue
            values = columns[spec.name]
            if spec.kind == "category":
                col = np.asarray(values, dtype=object).copy()
                col[np.equal(col, None)] = ""
                out[spec.name] = col.reshape(-1, 1)
            else:
                out[spec.name] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
        return out

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        (result,) = self._session.run([self._output], self.feed(columns))
        result = np.asarray(result, dtype=np.float64)
        if self.signature.task == "regression":
            return result.reshape(-1)
        if self.signature.task == "binary":
            return result[:, -1]
        return result


# -- the registry flavour ----------------------------------------------------------------
def save(model: Any) -> bytes:
    """An ``onnx.ModelProto`` or ``.onnx`` bytes -> the bytes the registry stores."""
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise ValidationError(
        f"the onnx flavour stores an onnx.ModelProto or .onnx bytes, got {type(model).__name__}; "
        "convert the model first (loopml.serve.edge.convert.to_onnx)",
        field="model",
    )


def load(data: bytes) -> bytes:
    """The servable form is the verified bytes themselves; the session opens at ``load()``."""
    return data


def _predictor(model: Any, signature: Signature, name: str, version: int) -> OnnxPredictor:
    return OnnxPredictor(signature, save(model), name=name, version=version)


FLAVOUR = Flavour("onnx", save, load, _predictor)
