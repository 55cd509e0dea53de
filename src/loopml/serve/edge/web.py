"""The browser target: a static page plus onnxruntime-web, so a model runs with no server.

onnxruntime-web comes from the npm registry at export time (``npm pack`` of a pinned
version, cached under the project), and only the three files the WebAssembly backend
needs are copied into the bundle: ``ort.wasm.min.js``, its ``.mjs`` loader and the
``.wasm`` binary. The page itself (``assets/``) builds a form from the signature in
``edge.json``, checks ``model.onnx`` against its sha256 and predicts in the browser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from loopml.core.errors import IntegrityError, UnavailableError, ValidationError
from loopml.core.hashing import sha256_bytes

#: The onnxruntime-web release bundles are built and browser-tested with.
ORT_WEB_VERSION = "1.30.0"
#: package path -> bundle path.
ORT_WEB_FILES = {
    "package/dist/ort.wasm.min.js": "vendor/ort.wasm.min.js",
    "package/dist/ort-wasm-simd-threaded.mjs": "vendor/ort-wasm-simd-threaded.mjs",
    "package/dist/ort-wasm-simd-threaded.wasm": "vendor/ort-wasm-simd-threaded.wasm",
}
PAGE_FILES = ("index.html", "edge.js", "edge.css")
_SOURCE = "source.json"


def page_files() -> dict[str, bytes]:
    """The page's own files, shipped inside loopml."""
    assets = resources.files("loopml.serve.edge") / "assets"
    return {name: (assets / name).read_bytes() for name in PAGE_FILES}


def onnxruntime_web(cache_dir: str | Path, version: str = ORT_WEB_VERSION) -> dict[str, bytes]:
    """The onnxruntime-web files for the bundle, from the cache or from npm.

    The cache holds the extracted files and ``source.json`` (the tarball's npm
    integrity and each file's sha256); a cached file that no longer matches is
    refused rather than shipped to devices.
    """
    _check_version(version)
    target = Path(cache_dir) / f"onnxruntime-web-{version}"
    source = target / _SOURCE
    if not source.is_file():
        _download(target, version)
    recorded = json.loads(source.read_text())
    out: dict[str, bytes] = {}
    for dest, digest in recorded["files"].items():
        data = (target / dest).read_bytes()
        if sha256_bytes(data) != digest:
            raise IntegrityError(
                f"cached onnxruntime-web file {target / dest} does not match the sha256 recorded "
                f"when it was downloaded; delete {target} and export again",
                path=str(target / dest),
            )
        out[dest] = data
    return out


def source_info(cache_dir: str | Path, version: str = ORT_WEB_VERSION) -> dict[str, str]:
    """Where the cached onnxruntime-web came from (npm integrity), for the manifest."""
    recorded = json.loads((Path(cache_dir) / f"onnxruntime-web-{version}" / _SOURCE).read_text())
    return {"package": "onnxruntime-web", "version": version, "integrity": recorded["integrity"]}


def _check_version(version: str) -> None:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValidationError(
            f"onnxruntime-web version {version!r} must be an exact release like "
            f"{ORT_WEB_VERSION!r}: bundles pin what they were tested with",
            field="onnxruntime_web",
        )


def _download(target: Path, version: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise UnavailableError(
            "--web needs npm to fetch onnxruntime-web from the npm registry, and npm is not on "
            "PATH; install Node.js and npm (Debian: `apt-get install -y npm`) or export "
            "without --web"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run(
            [npm, "pack", f"onnxruntime-web@{version}", "--json", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "NO_UPDATE_NOTIFIER": "1"},
        )
        if proc.returncode != 0:
            raise UnavailableError(
                f"`npm pack onnxruntime-web@{version}` failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-400:]}; check network access to the npm registry"
            )
        info = json.loads(proc.stdout[proc.stdout.index("[") :])[0]
        tarball = Path(tmp) / info["filename"]
        staging = Path(tmp) / "files"
        digests: dict[str, str] = {}
        with tarfile.open(tarball, "r:gz") as tar:
            for member_name, dest in ORT_WEB_FILES.items():
                member = tar.getmember(member_name)
                if not member.isfile():
                    raise IntegrityError(f"{member_name} in the npm tarball is not a file")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                path = staging / dest
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                digests[dest] = sha256_bytes(data)
        record = {"integrity": info.get("integrity", ""), "version": version, "files": digests}
        (staging / _SOURCE).write_text(json.dumps(record, indent=2, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
