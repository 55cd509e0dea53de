"""Load an edge bundle, refusing it unless every file matches its recorded sha256.

This is the code a device-side Python process runs, so it imports only numpy and
onnxruntime (through :class:`~loopml.predict.onnx.OnnxPredictor`): never
scikit-learn or LightGBM. A test checks exactly that in a fresh interpreter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.core.errors import IntegrityError, NotFoundError, ValidationError
from loopml.core.hashing import sha256_file
from loopml.core.signature import Signature
from loopml.predict.onnx import OnnxPredictor
from loopml.serve.edge.bundle import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_FILE,
    check_relpath,
    manifest_sha256,
)


@dataclass(frozen=True)
class EdgeBundle:
    """A verified bundle on disk: its manifest and where it lives."""

    root: Path
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        """The bundle's identity, reported to the update route."""
        return str(self.manifest["bundle_sha256"])

    @property
    def signature(self) -> Signature:
        return Signature.from_dict(self.manifest["signature"])

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def model_version(self) -> int:
        return int(self.manifest["model"]["version"])

    def predictor(self, threads: int = 1) -> OnnxPredictor:
        """A loaded :class:`OnnxPredictor`; the model bytes are hashed again as they load."""
        entry = self.manifest["files"][MODEL_FILE]
        return OnnxPredictor(
            self.signature,
            (self.root / MODEL_FILE).read_bytes(),
            name=self.model_name,
            version=self.model_version,
            expected_sha256=entry["sha256"],
            threads=threads,
        ).load()


def load_bundle(path: str | Path, expected_sha256: str | None = None) -> EdgeBundle:
    """Read and verify a bundle directory.

    Parameters
    ----------
    path:
        The bundle directory (the one holding ``edge.json``).
    expected_sha256:
        The bundle hash from a trusted source (the registry inventory, the update
        route). Without it the manifest is checked against itself, which catches
        changed or added files but not a rewritten manifest.

    Raises
    ------
    NotFoundError
        No bundle there, or a listed file is missing.
    IntegrityError
        A file's sha256 differs from the manifest, a file is not listed, or the
        manifest does not hash to ``bundle_sha256`` / ``expected_sha256``.
    """
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise NotFoundError(
            f"{root} is not an edge bundle: {MANIFEST} is missing; export one with "
            "`loopml export edge MODEL@ALIAS --out DIR`",
            path=str(root),
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{manifest_path} is not valid JSON ({exc}); refusing the bundle"
        ) from exc
    _check_format(manifest, manifest_path)
    recorded = manifest.get("bundle_sha256")
    actual = manifest_sha256(manifest)
    for label, want in (
        ("its own bundle_sha256", recorded),
        ("the expected hash", expected_sha256),
    ):
        if want is not None and actual != want:
            raise IntegrityError(
                f"{manifest_path} hashes to {actual[:12]}... but {label} is {str(want)[:12]}...: "
                "the manifest was edited after export; refusing the bundle. Download or "
                "export it again.",
                path=str(manifest_path),
            )
    _verify_files(root, manifest["files"])
    return EdgeBundle(root=root, manifest=manifest)


def _check_format(manifest: Any, where: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationError(
            f"{where} is not a {FORMAT} manifest (format={manifest.get('format')!r})"
            if isinstance(manifest, dict)
            else f"{where} must hold a JSON object",
            field="format",
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValidationError(
            f"{where} has format_version {version!r}; this loopml reads version "
            f"{FORMAT_VERSION}. Re-export the bundle with this loopml",
            field="format_version",
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise ValidationError(
            f"{where} lists no {MODEL_FILE} under 'files'; the bundle is incomplete",
            field="files",
        )


def _verify_files(root: Path, files: dict[str, Any]) -> None:
    for name, entry in sorted(files.items()):
        file = root / check_relpath(name)
        if not file.is_file():
            raise NotFoundError(
                f"bundle {root} lists {name} but the file is missing; the copy is incomplete",
                path=str(file),
            )
        actual = sha256_file(file)
        if actual != entry.get("sha256"):
            raise IntegrityError(
                f"bundle file {name} has sha256 {actual[:12]}... but the manifest records "
                f"{str(entry.get('sha256'))[:12]}...: it was modified after export; refusing "
                "to load the bundle. Download or export it again.",
                path=str(file),
            )
    listed = set(files) | {MANIFEST}
    extra = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in listed
    )
    if extra:
        raise IntegrityError(
            f"bundle {root} holds file(s) {extra} that its manifest does not list: something "
            "was added after export; refusing the bundle. Remove them or export it again.",
            path=str(root),
        )
