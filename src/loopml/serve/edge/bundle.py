"""The edge bundle format: a directory a device can verify before it runs anything.

::

    DIR/
      edge.json        manifest: model identity, signature (feature order, kinds),
                       preprocessing, output meaning, opsets, runtime versions it was
                       verified with, and {path: sha256, bytes} of every other file
      model.onnx       the graph (preprocessing included)
      parity.json      the parity report of this export
      tradeoff.*       (with compression) the variants table, JSON and plot
      index.html ...   (with --web) the static page and onnxruntime-web

``bundle_sha256`` is the sha256 of the canonical manifest without that field, so it
pins every file through their hashes. The registry's inventory records it, and an edge
client reports it when it polls for updates.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from loopml.core.errors import ConflictError, ValidationError
from loopml.core.hashing import sha256_bytes

FORMAT = "loopml-edge-bundle"
FORMAT_VERSION = 1
MANIFEST = "edge.json"
MODEL_FILE = "model.onnx"
PARITY_FILE = "parity.json"


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Hash of the canonical manifest, excluding ``bundle_sha256`` itself.

    >>> manifest_sha256({"files": {}, "bundle_sha256": "x"}) == manifest_sha256({"files": {}})
    True
    """
    body = {k: v for k, v in manifest.items() if k != "bundle_sha256"}
    return sha256_bytes(canonical_json(body))


def canonical_json(data: Any) -> bytes:
    """Sorted, compact JSON: the same manifest always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def check_relpath(path: str) -> str:
    """Refuse absolute paths and ``..`` in bundle file names (a manifest is untrusted input)."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValidationError(
            f"bundle file name {path!r} is not allowed: use a relative path without '..'",
            field="files",
        )
    return path


def write_bundle(
    out: str | Path, files: dict[str, bytes], manifest: dict[str, Any], force: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Write ``files`` plus the finished manifest to ``out`` atomically.

    The bundle is assembled in a sibling temporary directory and renamed into place,
    so a crash never leaves a half-written bundle that a device might pick up.

    Returns the bundle directory and the manifest with ``files`` and ``bundle_sha256``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise ConflictError(
            f"{out} already exists and is not empty; choose another --out or pass --force "
            "to replace it",
            path=str(out),
        )
    if MANIFEST in files:
        raise ValidationError(f"{MANIFEST} is written by the bundle itself", field="files")
    manifest = dict(manifest)
    manifest["format"], manifest["format_version"] = FORMAT, FORMAT_VERSION
    manifest["files"] = {
        check_relpath(name): {"sha256": sha256_bytes(data), "bytes": len(data)}
        for name, data in sorted(files.items())
    }
    manifest["bundle_sha256"] = manifest_sha256(manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, data in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        if out.exists():
            trash = out.with_name(f".{out.name}-old-{os.getpid()}")
            os.replace(out, trash)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, manifest
