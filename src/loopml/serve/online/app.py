"""The online prediction service: ``create_app(cfg)`` and ``run(cfg, ...)``.

One ASGI app serves every model of the project on one port. The prediction routes
are plain ASGI handlers (:mod:`.handlers`) in front of a Starlette app for the rest
(:mod:`.routes`); the gRPC V2 service runs beside it on ``[online] grpc_port``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

from loopml.core.config import ProjectConfig
from loopml.core.errors import LoopmlError, NotFoundError
from loopml.serve.online.handlers import dispatch, match
from loopml.serve.online.repository import ModelSource
from loopml.serve.online.state import ServerState

_PROJECT_ENV = "LOOPML_SERVE_PROJECT"
_OVERRIDES_ENV = "LOOPML_SERVE_OVERRIDES"


class OnlineApp:
    """The ASGI callable: hot prediction routes first, everything else to Starlette."""

    def __init__(self, state: ServerState, inner: Any) -> None:
        self.state = state
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            found = match(scope["method"], scope["path"])
            if found is not None:
                await dispatch(self.state, found[0], found[1], scope, receive, send)
                return
        await self.inner(scope, receive, send)


def create_app(
    cfg: ProjectConfig,
    source: ModelSource | None = None,
    *,
    grpc: bool = True,
    load_before_serving: bool = False,
) -> Any:
    """Build the app for a project (models from its registry unless ``source`` is given).

    ``load_before_serving`` is for one of several workers sharing a socket: the worker
    accepts connections only once its models are loaded. A lone server accepts at once
    and answers ``/v2/health/ready`` with 503 until then.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from loopml.serve.online.responses import error_status_body
    from loopml.serve.online.routes import JSONResponse, routes

    state = ServerState(cfg, source, grpc=grpc, load_before_serving=load_before_serving)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await state.startup()
        try:
            yield
        finally:
            await state.shutdown()

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        status, body = error_status_body(exc)
        return JSONResponse(body, status)

    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            body = {"error": f"no route {request.method} {request.url.path}; see /docs"}
        elif exc.status_code == 405:
            body = {"error": f"method {request.method} is not allowed on {request.url.path}"}
        else:
            body = {"error": str(exc.detail)}
        return JSONResponse(body, exc.status_code)

    from loopml.rollout.api import experiment_routes

    route_list = routes() + _edge_routes(cfg) + experiment_routes(state.dataplane, cfg)
    inner = Starlette(
        routes=route_list,
        lifespan=lifespan,
        exception_handlers={HTTPException: on_http, LoopmlError: on_error, Exception: on_error},
    )
    inner.state.loopml = state
    app = OnlineApp(state, inner)
    return app


def _edge_routes(cfg: ProjectConfig) -> list[Any]:
    """Pattern 3's bundle-update routes, served by the same app."""
    from loopml.serve.edge.updates import edge_routes

    return list(edge_routes(cfg))


def app_from_env() -> Any:
    """Factory for ``uvicorn --factory`` worker processes (``run`` with workers > 1)."""
    root = os.environ.get(_PROJECT_ENV)
    if not root:
        raise NotFoundError(f"{_PROJECT_ENV} is not set; start the server with `loopml serve`")
    cfg = ProjectConfig.load(root)
    overrides = os.environ.get(_OVERRIDES_ENV, "")
    if overrides:
        host, port = overrides.split(",")
        cfg = _with_address(cfg, host, int(port))
    return create_app(cfg, load_before_serving=True)


def _with_address(cfg: ProjectConfig, host: str, port: int, workers: int | None = None) -> Any:
    serve = dataclasses.replace(
        cfg.serve, host=host, port=port, workers=workers or cfg.serve.workers
    )
    return dataclasses.replace(cfg, serve=serve)


def run(
    cfg: ProjectConfig, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve until interrupted (what ``loopml serve`` calls)."""
    import uvicorn

    host = host or cfg.serve.host
    port = port if port is not None else cfg.serve.port
    workers = workers or cfg.serve.workers
    common: dict[str, Any] = dict(
        host=host,
        port=port,
        loop="auto",
        http="auto",
        access_log=False,
        lifespan="on",
        log_level="info",
        server_header=False,
    )
    if workers == 1:
        uvicorn.run(create_app(_with_address(cfg, host, port, workers)), **common)
        return
    os.environ[_PROJECT_ENV] = str(cfg.root)
    os.environ[_OVERRIDES_ENV] = f"{host},{port}"
    # workers import the model libraries before answering the supervisor's health pings;
    # on a busy machine that takes longer than uvicorn's 5 s default, which would kill them
    uvicorn.run(
        "loopml.serve.online.app:app_from_env",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=60,
        **common,
    )
