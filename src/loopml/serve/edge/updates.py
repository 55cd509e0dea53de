"""The route edge clients poll to learn whether to replace the bundle they run (seed 003).

``GET /v1/edge/{target}/latest?model=NAME&sha256=HASH`` compares the client's bundle
(by bundle or model.onnx hash) with the newest bundle exported for the model version
that the exported alias points at *now*:

- ``none``: the client runs it already;
- ``install``: the client sent no hash, or one loopml never exported;
- ``update``: a newer bundle exists (a newer version, or a re-export of the same one);
- ``rollback``: the client's model version was rolled back (the alias now points at an
  older version): it must move, to the bundle given if there is one;
- ``unavailable``: the alias points at a version with no bundle for this target yet.

``GET /v1/edge/bundles/{sha256}/{path}`` serves the published bundle files, each
verified against its manifest hash, so "where to fetch it" is a real URL.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loopml.core.config import ProjectConfig
from loopml.core.errors import IntegrityError, LoopmlError, NotFoundError, ValidationError
from loopml.core.names import check_name
from loopml.registry.bundles import BundleInventory, BundleRecord
from loopml.registry.records import normalise_ref
from loopml.registry.registry import Registry
from loopml.serve.edge.bundle import MANIFEST, check_relpath, manifest_sha256

_SHA = re.compile(r"^[0-9a-f]{64}$")
_TYPES = {
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
}


class EdgeUpdates:
    """The handler behind the routes: registry aliases + the bundle inventory."""

    def __init__(self, registry: Registry, inventory: BundleInventory) -> None:
        self.registry = registry
        self.inventory = inventory

    def latest(self, model: str, target: str, sha256: str | None, ref: str | None) -> dict:
        """The answer for one poll (see the module docstring for the actions)."""
        check_name(model, "model")
        check_name(target, "target")
        if sha256 is not None and not _SHA.match(sha256):
            raise ValidationError(
                f"sha256 {sha256!r} is not a 64-character lowercase hex digest; send the "
                "bundle_sha256 from the bundle's edge.json",
                field="sha256",
            )
        bundles = self.inventory.list(model, target)
        if not bundles:
            raise NotFoundError(
                f"no edge bundle of model {model!r} was exported for target {target!r}; "
                f"export one with `loopml export edge {model}@production --target {target}`",
                model=model,
                target=target,
            )
        follow = ref or bundles[0].ref
        current = self.registry.resolve(model, normalise_ref(follow))
        desired = next((b for b in bundles if b.model_version == current), None)
        client = self.inventory.find(sha256) if sha256 else None
        if client is not None and (client.model_name != model or client.target != target):
            client = None  # a bundle of another model or target: treat as unknown
        action, reason = self._decide(model, follow, current, desired, client, sha256)
        return {
            "model": model,
            "target": target,
            "ref": follow,
            "current_version": current,
            "action": action,
            "update_available": action in ("install", "update", "rollback") and desired is not None,
            "rolled_back": action == "rollback",
            "reason": reason,
            "client": None if client is None else _summary(client),
            "bundle": None if desired is None else _summary(desired),
        }

    def _decide(
        self,
        model: str,
        ref: str,
        current: int,
        desired: BundleRecord | None,
        client: BundleRecord | None,
        sha256: str | None,
    ) -> tuple[str, str]:
        if client is not None and client.model_version > current:
            moved = [
                m
                for m in self.registry.alias_history(model, ref)
                if m.from_version == client.model_version
            ]
            how = (
                f"{moved[-1].kind} by {moved[-1].actor} at {moved[-1].at:%Y-%m-%d %H:%M}"
                + (f" ({moved[-1].reason})" if moved[-1].reason else "")
                if moved
                else "it was never promoted there"
            )
            where = "" if desired else f"; no {client.target} bundle of v{current} exists yet"
            return "rollback", f"{model} v{client.model_version} left {ref}: {how}{where}"
        if desired is None:
            return "unavailable", (
                f"{model}@{ref} is v{current} but no bundle of v{current} was exported for "
                "this target; keep the current bundle"
            )
        if client is None:
            known = "no hash sent" if sha256 is None else "hash not exported by loopml"
            return "install", f"{known}; install {model} v{current}"
        if client.bundle_sha256 == desired.bundle_sha256:
            return "none", f"up to date with {model}@{ref} (v{current})"
        if client.model_version < current:
            return "update", f"{model}@{ref} moved from v{client.model_version} to v{current}"
        return "update", f"a newer bundle of v{current} was exported ({desired.compression})"

    def manifest(self, sha256: str) -> tuple[BundleRecord, dict[str, Any]]:
        """A published bundle's manifest, checked against its inventory hash."""
        import json

        record = self.inventory.get(sha256)
        data = self.registry.artifacts.get_bytes(f"{record.location}/{MANIFEST}")
        manifest = json.loads(data)
        if manifest_sha256(manifest) != record.bundle_sha256:
            raise IntegrityError(
                f"published manifest of bundle {sha256[:12]}... was modified; refusing to "
                "serve it. Export the bundle again.",
                sha256=sha256,
            )
        return record, manifest

    def file(self, sha256: str, path: str) -> bytes:
        """One published bundle file, refused unless it matches the manifest hash."""
        check_relpath(path)
        record, manifest = self.manifest(sha256)
        if path == MANIFEST:
            return self.registry.artifacts.get_bytes(f"{record.location}/{MANIFEST}")
        entry = manifest["files"].get(path)
        if entry is None:
            raise NotFoundError(
                f"bundle {sha256[:12]}... has no file {path!r}; it holds "
                f"{sorted(manifest['files'])}",
                path=path,
            )
        return self.registry.artifacts.get_bytes(
            f"{record.location}/{path}", sha256=entry["sha256"]
        )


def _summary(rec: BundleRecord) -> dict[str, Any]:
    return {
        "sha256": rec.bundle_sha256,
        "model_sha256": rec.model_sha256,
        "model_version": rec.model_version,
        "compression": rec.compression,
        "size_bytes": rec.size_bytes,
        "created_at": rec.created_at.isoformat() if rec.created_at else None,
    }


def edge_routes(registry_or_cfg: Registry | ProjectConfig) -> list[Route]:
    """Starlette routes for edge updates and bundle downloads; mount them in any app."""
    if isinstance(registry_or_cfg, ProjectConfig):
        registry = Registry.from_config(registry_or_cfg)
    elif isinstance(registry_or_cfg, Registry):
        registry = registry_or_cfg
    else:
        raise ValidationError(
            f"edge_routes needs a Registry or a ProjectConfig, got "
            f"{type(registry_or_cfg).__name__}",
            field="registry",
        )
    handler = EdgeUpdates(registry, BundleInventory(registry.metadata_url))

    def latest(request: Request) -> Response:
        params = request.query_params
        try:
            model = params.get("model")
            if not model:
                raise ValidationError(
                    "query parameter 'model' is required, e.g. ?model=ctr&sha256=<bundle hash>",
                    field="model",
                )
            body = handler.latest(
                model,
                request.path_params["target"],
                params.get("sha256") or None,
                params.get("ref"),
            )
        except LoopmlError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status_code)
        if body["bundle"] is not None:
            body["bundle"]["url"] = str(
                request.url_for("edge_bundle_file", sha256=body["bundle"]["sha256"], path=MANIFEST)
            )
        return JSONResponse(body)

    def bundle_file(request: Request) -> Response:
        sha256, path = request.path_params["sha256"], request.path_params["path"]
        try:
            if not _SHA.match(sha256):
                raise ValidationError(f"{sha256!r} is not a bundle sha256", field="sha256")
            data = handler.file(sha256, path)
        except LoopmlError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status_code)
        suffix = "." + path.rsplit(".", 1)[-1] if "." in path else ""
        media = _TYPES.get(suffix, "application/octet-stream")
        return Response(
            data, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable"}
        )

    return [
        Route("/v1/edge/bundles/{sha256}/{path:path}", bundle_file, name="edge_bundle_file"),
        Route("/v1/edge/{target}/latest", latest, name="edge_latest"),
    ]
