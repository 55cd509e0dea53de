"""Flavours: how a model of one framework is saved, loaded and wrapped as a Predictor.

The registry stores bytes and a flavour name; this module turns them back into a
:class:`~loopml.predict.predictor.Predictor`. The mapping below is explicit and
lazy (a module path per flavour), so importing loopml never imports LightGBM or
ONNX Runtime, and adding a flavour is one line in :data:`FLAVOURS`::

    "onnx": "loopml.predict.onnx:FLAVOUR",

Bytes are only ever deserialised after their sha256 matched the registry record.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.core.errors import IntegrityError, ValidationError, did_you_mean
from loopml.core.hashing import sha256_bytes
from loopml.core.signature import Signature

if TYPE_CHECKING:
    from loopml.predict.predictor import Predictor
    from loopml.registry.records import ModelVersion
    from loopml.registry.registry import Registry

#: flavour name -> "module:attribute" of its :class:`Flavour`. Add one line per flavour.
FLAVOURS: dict[str, str] = {
    "sklearn": "loopml.predict.sklearn:FLAVOUR",
    "lightgbm": "loopml.predict.lightgbm:FLAVOUR",
    "river": "loopml.predict.river:FLAVOUR",
    "onnx": "loopml.predict.onnx:FLAVOUR",
}


@dataclass(frozen=True)
class Flavour:
    """The three things a framework must provide to be served by loopml.

    ``save``: fitted model -> artifact bytes. ``load``: verified bytes -> servable
    model. ``predictor``: (servable or fitted model, signature, name, version) ->
    an unloaded Predictor.
    """

    name: str
    save: Callable[[Any], bytes]
    load: Callable[[bytes], Any]
    predictor: Callable[[Any, Signature, str, int], Predictor]


def get_flavour(name: str) -> Flavour:
    """The Flavour registered under ``name``; unknown names list the known ones."""
    target = FLAVOURS.get(name)
    if target is None:
        raise ValidationError(
            f"unknown model flavour {name!r}; {did_you_mean(name, sorted(FLAVOURS))}",
            field="flavour",
        )
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def save_model(model: Any, flavour: str) -> bytes:
    """Serialise a fitted model to the bytes the registry stores for ``flavour``."""
    return get_flavour(flavour).save(model)


def load_model(data: bytes, flavour: str, *, sha256: str) -> Any:
    """The inverse of :func:`save_model`, refusing bytes whose hash is not ``sha256``.

    The hash is required: loopml deserialises only artifacts whose hash it recorded.
    """
    actual = sha256_bytes(data)
    if actual != sha256:
        raise IntegrityError(
            f"model bytes hash to {actual[:12]}... but {sha256[:12]}... was expected; "
            "refusing to deserialise them. Load models through the registry.",
        )
    return get_flavour(flavour).load(data)


def predictor_for(
    model: Any, signature: Signature, flavour: str, *, name: str = "model", version: int = 0
) -> Predictor:
    """A loaded Predictor around an in-memory fitted model (no bytes involved).

    Used right after training (evaluation, shadow comparisons) before registration.
    """
    return get_flavour(flavour).predictor(model, signature, name, version).load()


def load_predictor(registry: Registry, name: str, ref: int | str = "production") -> Predictor:
    """Fetch ``name@ref`` from the registry, verify its hash, and return a loaded Predictor.

    Raises NotFoundError (unknown model/version/alias, listing what exists),
    IntegrityError (tampered artifact) or ValidationError (unknown flavour).
    """
    mv, data = registry.fetch(name, ref)
    return predictor_from_version(mv, data)


def predictor_from_version(mv: ModelVersion, data: bytes) -> Predictor:
    """A loaded Predictor for a registry record and its artifact bytes (hash checked)."""
    model = load_model(data, mv.flavour, sha256=mv.sha256)
    predictor = get_flavour(mv.flavour).predictor(model, mv.signature, mv.name, mv.version)
    predictor.model_version = mv
    return predictor.load()
