"""The experiment admin API: JSON routes the online app mounts beside its own.

Every route needs ``Authorization: Bearer <token>`` (the online service's admin
token), because each one can change which model users get or skew a decision::

    GET  /v1/experiments                    every experiment (newest last)
    POST /v1/experiments                    start: {"name", "model", "policy", "arms", ...}
    GET  /v1/experiments/{name}             status: arms, comparison, decision, events
    POST /v1/experiments/{name}/stop        {"reason": "..."}
    POST /v1/experiments/{name}/promote     {"arm": "challenger", "reason": "..."}
    POST /v1/experiments/{name}/feedback    {"rows": [{"request_id", "metric", "value", "item"}]}
                                            or one such object
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from loopml.core.errors import ValidationError
from loopml.core.names import check_name
from loopml.rollout.records import ExperimentSpec

if TYPE_CHECKING:
    from loopml.core.config import ProjectConfig
    from loopml.rollout.router import ExperimentRouter

_MAX_FEEDBACK_ROWS = 10_000


def experiment_routes(router: ExperimentRouter, cfg: ProjectConfig) -> list[Any]:
    """The admin routes for ``router``, guarded by ``cfg``'s admin token."""
    import orjson
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from loopml.serve.online.security import check_admin, read_body

    class _JSON(Response):
        media_type = "application/json"

        def render(self, content: Any) -> bytes:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

    async def body(request: Request) -> Any:
        headers = {k.lower(): v for k, v in request.headers.items()}
        check_admin(headers, cfg.admin_token(), cfg.serve.admin_token_env)
        if request.method == "GET":
            return None
        raw = await read_body(request.receive, headers, cfg.serve.max_body_bytes)
        if not raw:
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"body is not valid JSON ({exc})", field="body") from None

    def name_of(request: Request) -> str:
        return check_name(request.path_params["name"], "experiment name")

    def obj(doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise ValidationError("body must be a JSON object", field="body")
        return doc

    async def list_all(request: Request) -> Response:
        await body(request)
        found = await asyncio.to_thread(router.store.list)
        return _JSON({"experiments": [e.to_dict() for e in found]})

    async def start(request: Request) -> Response:
        spec = ExperimentSpec.from_dict(obj(await body(request)))
        exp = await router.start(spec)
        return _JSON(exp.to_dict(), 201)

    async def status(request: Request) -> Response:
        await body(request)
        return _JSON(await router.status(name_of(request)))

    async def stop(request: Request) -> Response:
        doc = obj(await body(request))
        exp = await router.stop(name_of(request), str(doc.get("reason", "")))
        return _JSON(exp.to_dict())

    async def promote(request: Request) -> Response:
        doc = obj(await body(request))
        arm = doc.get("arm")
        if arm is not None and not isinstance(arm, str):
            raise ValidationError("'arm' must be an arm name such as \"challenger\"", field="arm")
        out = await router.promote(name_of(request), arm, str(doc.get("reason", "")))
        return _JSON(out)

    async def feedback(request: Request) -> Response:
        doc = await body(request)
        rows = doc.get("rows") if isinstance(doc, dict) and "rows" in doc else [doc]
        if not isinstance(rows, list) or not rows or len(rows) > _MAX_FEEDBACK_ROWS:
            raise ValidationError(
                f"'rows' must be a list of 1 to {_MAX_FEEDBACK_ROWS} feedback objects "
                '({"request_id": ..., "metric": "click", "value": 1})',
                field="rows",
            )
        return _JSON(await router.feedback(name_of(request), rows))

    return [
        Route("/v1/experiments", list_all, methods=["GET"]),
        Route("/v1/experiments", start, methods=["POST"]),
        Route("/v1/experiments/{name}", status, methods=["GET"]),
        Route("/v1/experiments/{name}/stop", stop, methods=["POST"]),
        Route("/v1/experiments/{name}/promote", promote, methods=["POST"]),
        Route("/v1/experiments/{name}/feedback", feedback, methods=["POST"]),
    ]
