"""The non-hot HTTP routes (Starlette): health, metadata, admin, jobs, events, metrics, docs.

Health routes answer 200 with a JSON body; every error is ``{"error": ...}``. Admin
routes need ``Authorization: Bearer <token>`` (the token comes from the environment
variable named by ``serve.admin_token_env``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

import loopml
from loopml.core.errors import NotFoundError, UnavailableError, ValidationError
from loopml.core.names import check_name
from loopml.serve.online import simple
from loopml.serve.online.openapi import docs_page, openapi_spec
from loopml.serve.online.security import check_admin, read_body

if TYPE_CHECKING:
    from loopml.serve.online.state import ServerState

EXTENSIONS = ["binary_tensor_data", "mlflow_invocations", "simple_json", "async_jobs"]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _state(request: Request) -> ServerState:
    return request.app.state.loopml


async def _body(request: Request) -> bytes:
    state = _state(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await read_body(request.receive, headers, state.max_body_bytes)


def _json_object(raw: bytes) -> dict[str, Any]:
    from loopml.serve.online.v2 import parse_json

    doc = parse_json(raw) if raw else {}
    if not isinstance(doc, dict):
        raise ValidationError("body must be a JSON object", field="body")
    return doc


# -- health and server metadata ---------------------------------------------------------------
async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    repo = _state(request).repository
    if not repo.ready:
        return JSONResponse({"error": "not ready: models are loading", "ready": False}, 503)
    return JSONResponse({"ready": True, "models": sorted(repo.default), "errors": repo.errors})


async def server_metadata(request: Request) -> Response:
    return JSONResponse(
        {"name": "loopml", "version": getattr(loopml, "__version__", "0"), "extensions": EXTENSIONS}
    )


async def ping(request: Request) -> Response:
    """MLflow's ``/ping`` and ``/health``: 200 once the models are loaded."""
    return await ready(request)


# -- models ----------------------------------------------------------------------------------
async def model_metadata(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    model = await state.repository.get(name, request.path_params.get("version"))
    versions = await asyncio.to_thread(state.repository.source.versions, name)
    return JSONResponse(
        {
            "name": model.name,
            "versions": [str(v) for v in versions],
            "platform": f"loopml_{getattr(model.predictor, 'flavour', 'unknown')}",
            "inputs": model.input_specs(),
            "outputs": model.output_specs(),
            "parameters": {"version": str(model.version), "task": model.task},
        }
    )


async def model_ready(request: Request) -> Response:
    state = _state(request)
    model = await state.repository.get(
        request.path_params["name"], request.path_params.get("version")
    )
    return JSONResponse({"name": model.name, "version": str(model.version), "ready": True})


async def list_models(request: Request) -> Response:
    return JSONResponse(_state(request).repository.status())


async def describe_model(request: Request) -> Response:
    state = _state(request)
    model = await state.repository.get(request.path_params["name"])
    return JSONResponse(model.describe())


# -- asynchronous jobs -------------------------------------------------------------------------
async def submit_job(request: Request) -> Response:
    state = _state(request)
    name = check_name(request.path_params["name"], "model name")
    req = simple.decode(await _body(request))
    headers = {k.lower(): v for k, v in request.headers.items()}
    await state.repository.get(name, req.version)  # 404 now rather than a failed job later

    async def work() -> dict[str, Any]:
        columns = req.columns
        if req.entities is not None:
            found = await state.dataplane.lookup(name, req.entities, req.version)
            columns = {**{k: [v] for k, v in found.items()}, **req.columns}
        result = await state.dataplane.infer(
            name,
            columns,
            version=req.version,
            headers=headers,
            params=req.params,
            timeout_ms=0,
            protocol="async",
        )
        return orjson.loads(
            orjson.dumps(simple.encode(result, req.single), option=orjson.OPT_SERIALIZE_NUMPY)
        )

    job_id = await state.jobs.submit(work, model=name)
    return JSONResponse(
        {"job_id": job_id, "status": "running", "status_url": f"/v1/jobs/{job_id}"},
        202,
        headers={"location": f"/v1/jobs/{job_id}"},
    )


async def get_job(request: Request) -> Response:
    doc = await _state(request).jobs.get(request.path_params["job_id"])
    return JSONResponse(doc)


# -- behaviour events --------------------------------------------------------------------------
async def ingest_events(request: Request) -> Response:
    """``{"event_type": "click", "rows": [...]}``: validated; bad rows are dead-lettered."""
    state = _state(request)
    doc = _json_object(await _body(request))
    event_type = doc.get("event_type")
    rows = doc.get("rows")
    if not isinstance(event_type, str):
        raise ValidationError("'event_type' must be a string such as \"click\"", field="event_type")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValidationError("'rows' must be a non-empty list of event objects", field="rows")
    from loopml.logs.schemas import event_types

    known = event_types()
    if event_type not in known:
        from loopml.core.errors import did_you_mean

        raise ValidationError(
            f"unknown event type {event_type!r}; {did_you_mean(event_type, known)}",
            field="event_type",
        )
    result = await asyncio.to_thread(state.eventlog.append, event_type, rows, source="http")
    m = state.metrics
    m.child(m.events, event_type, "accepted").inc(result.accepted)
    m.child(m.events, event_type, "rejected").inc(result.rejected)
    return JSONResponse(
        {
            "accepted": result.accepted,
            "rejected": result.rejected,
            "duplicates": result.duplicates,
            "reasons": result.reasons,
            "dead_letter": result.dead_letter_path is not None,
        }
    )


# -- admin -------------------------------------------------------------------------------------
def _admin(request: Request) -> ServerState:
    state = _state(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    check_admin(headers, state.cfg.admin_token(), state.cfg.serve.admin_token_env)
    return state


async def admin_reload(request: Request) -> Response:
    state = _admin(request)
    name = check_name(request.path_params["name"], "model name")
    await state.repository.ensure_known(name)
    loaded = await state.repository.refresh(name)
    if loaded is None:
        raise UnavailableError(
            f"reloading {name!r} failed: {state.repository.errors.get(name)}", model=name
        )
    return JSONResponse({"model": name, "version": loaded.version, "ref": loaded.ref})


async def admin_set_alias(request: Request) -> Response:
    state = _admin(request)
    name = check_name(request.path_params["name"], "model name")
    alias = check_name(request.path_params["alias"], "alias")
    doc = _json_object(await _body(request))
    version = doc.get("version")
    if not isinstance(version, int | str) or isinstance(version, bool):
        raise ValidationError("'version' must be a version number or a ref", field="version")
    reason = doc.get("reason", "")
    registry = getattr(state.repository.source, "registry", None)
    if registry is None:
        raise NotFoundError("this server has no registry to move aliases in", field="alias")
    move = await asyncio.to_thread(
        registry.set_alias, name, alias, version, actor="admin-api", reason=str(reason)
    )
    loaded = await state.repository.refresh(name)
    return JSONResponse(
        {
            "model": name,
            "alias": alias,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "serving": loaded.version if loaded is not None else None,
        }
    )


# -- metrics and docs --------------------------------------------------------------------------
async def metrics(request: Request) -> Response:
    state = _state(request)
    state.metrics.cache_ratio.set(state.cache.hit_ratio if state.cache else 0.0)
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


def routes() -> list[Route]:
    """Every non-hot route, in one explicit list."""
    return [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v1/models", list_models),
        Route("/v1/models/{name}", describe_model),
        Route("/v1/models/{name}/jobs", submit_job, methods=["POST"]),
        Route("/v1/jobs/{job_id}", get_job),
        Route("/v1/events", ingest_events, methods=["POST"]),
        Route("/v1/admin/models/{name}/reload", admin_reload, methods=["POST"]),
        Route("/v1/admin/models/{name}/aliases/{alias}", admin_set_alias, methods=["POST", "PUT"]),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/docs", docs),
        Route("/ping", ping),
        Route("/health", ping),
    ]
