"""``loopml export edge MODEL@ALIAS --out DIR``: registry model -> verified edge bundle.

The steps, each of which can stop the export with a clear message:

1. fetch the model from the registry (hash verified) and load its native Predictor;
2. convert it, preprocessing included, to ONNX (:mod:`.convert`);
3. prove parity on held-out rows: ONNX vs the native model (:mod:`.parity`);
4. optionally build compressed variants, measure them and pick one within
   ``max_size`` / ``max_metric_loss`` (:mod:`.compression`, :mod:`.tradeoff`);
5. optionally add the browser page and onnxruntime-web (:mod:`.web`);
6. write the bundle atomically, re-load it through the verifying loader, publish it
   to the artifact store and record it in the registry's inventory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.core.clock import utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError
from loopml.core.names import check_name
from loopml.core.signature import Signature
from loopml.registry.bundles import BundleInventory, BundleRecord
from loopml.serve.edge.bundle import MANIFEST, MODEL_FILE, PARITY_FILE, write_bundle
from loopml.serve.edge.loader import EdgeBundle, load_bundle
from loopml.serve.edge.parity import MAX_ABS_DIFF, MAX_METRIC_DIFF, ParityReport

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "kib": 1024,
    "m": 1e6,
    "mb": 1e6,
    "mib": 1024**2,
    "g": 1e9,
    "gb": 1e9,
    "gib": 1024**3,
}


@dataclass
class ExportResult:
    """What an export produced, for the CLI to print and tests to check."""

    bundle: EdgeBundle
    record: BundleRecord
    parity: ParityReport
    chosen: str = "original"
    tradeoff: list[Any] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        size = self.bundle.manifest["files"][MODEL_FILE]["bytes"]
        lines = [
            f"bundle {self.bundle.root} ({self.record.model_name} v{self.record.model_version}, "
            f"target {self.record.target}, {self.chosen}, model.onnx {size / 1024:.1f} KiB)",
            f"bundle sha256 {self.bundle.sha256}",
            f"parity: max |dp| {self.parity.max_abs_diff:.2e} over {self.parity.rows} rows"
            + (
                f", {self.parity.metric} {self.parity.metric_native:.4f} -> "
                f"{self.parity.metric_onnx:.4f}"
                if self.parity.metric
                else ""
            ),
        ]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def parse_size(value: int | str | None) -> int | None:
    """``"2MB"``, ``"500KiB"``, ``"1048576"`` -> bytes.

    >>> parse_size("1.5MB"), parse_size("64KiB"), parse_size(None)
    (1500000, 65536, None)
    """
    if value is None or isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match or (match.group(2) or "").lower() not in _UNITS:
        raise ValidationError(
            f"--max-size {value!r} is not a size; write bytes or a unit, e.g. 500KB, 2MiB",
            field="max_size",
        )
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def export_edge(
    cfg: ProjectConfig,
    ref: str,
    out: str | Path,
    *,
    web: bool = False,
    compress: str | Sequence[str] | None = None,
    max_size: int | str | None = None,
    max_metric_loss: float | None = None,
    target: str | None = None,
    data: Any = None,
    label: str | None = None,
    sample_rows: int = 5000,
    batch_rows: int = 10_000,
    tolerance: float = MAX_ABS_DIFF,
    metric_tolerance: float = MAX_METRIC_DIFF,
    force: bool = False,
    web_cache: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
) -> ExportResult:
    """Export ``ref`` (``NAME@ALIAS`` or ``NAME@VERSION``) as a verified edge bundle in ``out``.

    ``data`` is the held-out sample parity and compression are measured on: a
    DataFrame or a Parquet/CSV path with the signature's columns (``label`` names the
    label column). Without it the sample registered with the model version is used.
    Numbers are rounded to float32 first, the precision devices and the graph use.
    ``max_size`` / ``max_metric_loss`` imply ``compress="all"`` when no method is named.
    """
    from loopml.core.progress import progress_bar
    from loopml.predict.flavours import load_predictor
    from loopml.registry.records import parse_ref
    from loopml.registry.registry import Registry
    from loopml.serve.edge.compression import METHODS, parse_methods
    from loopml.serve.edge.convert import to_onnx
    from loopml.serve.edge.sample import estimator_of, held_out

    methods = parse_methods(compress)
    size_limit = parse_size(max_size)
    if (size_limit is not None or max_metric_loss is not None) and not methods:
        methods = list(METHODS)
    target = check_name(target or ("browser" if web else "onnxruntime"), "target")
    name, version_ref = parse_ref(ref)
    registry = Registry.from_config(cfg)
    steps = 6 + (1 if methods else 0) + (1 if web else 0)
    with progress_bar(steps, f"export {ref} -> {target}", enabled=progress) as advance:
        native = load_predictor(registry, name, version_ref)
        mv, signature, model = native.model_version, native.signature, estimator_of(native)
        advance(1)
        frame, labels = held_out(registry, mv, data, label, sample_rows, seed)
        reference = native.predict(frame)
        advance(1)
        original = to_onnx(model, signature, name=name, version=mv.version).SerializeToString()
        advance(1)
        parity = _parity(original, signature, frame, reference, labels, tolerance, metric_tolerance)
        parity.raise_if_failed(f"{name} v{mv.version}")
        advance(1)
        choice = _Choice("original", original)
        if methods:
            choice = _compress(
                model,
                native,
                original,
                methods,
                frame,
                labels,
                reference,
                size_limit,
                max_metric_loss,
                batch_rows,
                seed,
            )
            advance(1)
        files = {MODEL_FILE: choice.onnx, PARITY_FILE: _parity_file(parity, choice), **choice.files}
        web_info = None
        if web:
            web_info = _add_web(cfg, files, web_cache)
            advance(1)
        manifest = _manifest(mv, version_ref, target, choice, model, parity, web_info)
        root, manifest = write_bundle(out, files, manifest, force=force)
        bundle = load_bundle(root, expected_sha256=manifest["bundle_sha256"])
        advance(1)
        record = _publish(registry, bundle, str(version_ref), target, choice.name, web)
        advance(1)
    return ExportResult(bundle, record, parity, choice.name, choice.rows, choice.skipped)


@dataclass
class _Choice:
    """The variant that goes into the bundle, and the trade-off that chose it."""

    name: str
    onnx: bytes
    rows: list[Any] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def _parity(
    original: bytes,
    signature: Signature,
    frame: Any,
    reference: Any,
    labels: Any,
    tolerance: float,
    metric_tolerance: float,
) -> ParityReport:
    from loopml.predict.onnx import OnnxPredictor
    from loopml.serve.edge.parity import compare

    exported = OnnxPredictor(signature, original).load().predict(frame)
    return compare(
        reference, exported, signature.task, labels, signature.classes, tolerance, metric_tolerance
    )


def _compress(
    model: Any,
    native: Any,
    original: bytes,
    methods: list[str],
    frame: Any,
    labels: Any,
    reference: Any,
    max_size: int | None,
    max_metric_loss: float | None,
    batch_rows: int,
    seed: int,
) -> _Choice:
    """Build, measure and choose among variants; the first half of the sample teaches
    the students, the second half scores every variant (the original included)."""
    from loopml.serve.edge import tradeoff as tr
    from loopml.serve.edge.compression import build_variants
    from loopml.serve.edge.parity import score

    if labels is None:
        raise ValidationError(
            "compression compares variants by their metric, so the held-out sample needs "
            "labels; pass --label COLUMN",
            field="label",
        )
    sig, name, version = native.signature, native.name, native.version
    half = len(frame) // 2
    variants, skipped = build_variants(
        model,
        sig,
        original,
        methods,
        frame.iloc[:half],
        native.predict,
        name=name,
        version=version,
        seed=seed,
    )
    eval_frame, eval_labels = frame.iloc[half:].reset_index(drop=True), labels[half:]
    base = score(sig.task, eval_labels, reference[half:], sig.classes)
    rows = tr.measure(variants, sig, eval_frame, eval_labels, base, batch_rows)
    chosen = tr.choose(rows, max_size, max_metric_loss).name
    notes = [f"{name} v{version}; {base.name} on {len(eval_frame)} held-out rows"]
    notes += [f"skipped {n}: {why}" for n, why in skipped]
    table = {
        "chosen": chosen,
        "rows": [r.to_dict() for r in rows],
        "skipped": skipped,
        "max_size": max_size,
        "max_metric_loss": max_metric_loss,
    }
    fig = tr.figure(rows, chosen)
    files = {
        "tradeoff.md": tr.to_markdown(rows, chosen).encode(),
        "tradeoff.json": json.dumps(table, indent=2).encode(),
        "tradeoff.png": tr.png(fig),
        "tradeoff.html": tr.report(rows, chosen, f"{name} v{version}", notes, fig).encode(),
    }
    onnx = next(v.onnx for v in variants if v.name == chosen)
    return _Choice(chosen, onnx, rows, skipped, files)


def _parity_file(parity: ParityReport, choice: _Choice) -> bytes:
    row = next((r.to_dict() for r in choice.rows if r.name == choice.name), None)
    body = {"original": parity.to_dict(), "chosen": choice.name, "chosen_row": row}
    return json.dumps(body, indent=2).encode()


def _add_web(cfg: ProjectConfig, files: dict[str, bytes], cache: str | Path | None) -> dict:
    """Add the page and onnxruntime-web (pinned, from npm, cached under the project)."""
    from loopml.serve.edge import web

    version = str(cfg.section("edge").get("onnxruntime_web", web.ORT_WEB_VERSION))
    cache_dir = Path(cache) if cache else cfg.state_dir / "cache" / "npm"
    files.update(web.page_files())
    files.update(web.onnxruntime_web(cache_dir, version))
    return {**web.source_info(cache_dir, version), "onnxruntime_web": version, "page": "index.html"}


def _manifest(
    mv: Any,
    ref: Any,
    target: str,
    choice: _Choice,
    model: Any,
    parity: ParityReport,
    web_info: dict | None,
) -> dict[str, Any]:
    import onnx
    import onnxruntime

    from loopml.serve.edge.convert import OPSET, describe_preprocessing

    signature = mv.signature
    return {
        "model": {
            "name": mv.name,
            "version": mv.version,
            "flavour": mv.flavour,
            "ref": str(ref),
            "sha256": mv.sha256,
        },
        "target": target,
        "compression": choice.name,
        "created_at": utcnow().isoformat(),
        "signature": signature.to_dict(),
        "feature_order": signature.names,
        "inputs": [_input_spec(c) for c in signature.inputs],
        "preprocessing": describe_preprocessing(model, signature),
        "outputs": _outputs(signature),
        "opset": {domain or "ai.onnx": v for domain, v in _opsets(choice.onnx).items()},
        "target_opset": OPSET,
        "verified_with": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__},
        "parity": {
            "max_abs_diff": parity.max_abs_diff,
            "rows": parity.rows,
            "metric": parity.metric,
            "metric_diff": parity.metric_diff,
            "tolerance": parity.tolerance,
        },
        "web": web_info,
    }


def _publish(
    registry: Any, bundle: EdgeBundle, ref: str, target: str, compression: str, web: bool
) -> BundleRecord:
    """Copy the bundle to the artifact store (for the update route) and record it."""
    manifest = bundle.manifest
    location = f"edge/{bundle.model_name}/{bundle.sha256}"
    for rel in [*manifest["files"], MANIFEST]:
        registry.artifacts.put_file(f"{location}/{rel}", bundle.root / rel)
    model_file = manifest["files"][MODEL_FILE]
    return BundleInventory(registry.metadata_url).record(
        BundleRecord(
            bundle_sha256=bundle.sha256,
            model_sha256=model_file["sha256"],
            model_name=bundle.model_name,
            model_version=bundle.model_version,
            ref=ref,
            target=target,
            compression=compression,
            size_bytes=sum(f["bytes"] for f in manifest["files"].values()),
            location=location,
            details={"parity": manifest["parity"], "web": web, "model_bytes": model_file["bytes"]},
        )
    )


def _input_spec(spec: Any) -> dict[str, Any]:
    category = spec.kind == "category"
    return {
        "name": spec.name,
        "kind": spec.kind,
        "dtype": "string" if category else "float32",
        "shape": [None, 1],
        "missing": '""' if category else "NaN",
    }


def _outputs(signature: Signature) -> dict[str, Any]:
    if signature.task == "regression":
        return {"variable": {"shape": [None, 1], "meaning": signature.output}}
    classes = list(signature.classes) if signature.classes is not None else None
    meaning = signature.output
    if signature.task == "binary":
        meaning = f"column 1 = {signature.output}; column 0 = its complement"
    return {
        "probabilities": {
            "shape": [None, len(classes or [0, 1])],
            "classes": classes,
            "meaning": meaning,
        },
        "label": {"shape": [None], "meaning": "the most probable class"},
    }


def _opsets(data: bytes) -> dict[str, int]:
    import onnx

    proto = onnx.load_from_string(data)
    return {o.domain: int(o.version) for o in proto.opset_import}
