"""The hot routes as plain ASGI handlers: V2 infer, simple predict, MLflow invocations.

These run on every prediction, so they skip the web framework: read the body (with
the size limit), decode, call :meth:`DataPlane.infer`, encode with orjson, send. The
rest of the API (health, metadata, admin, jobs, events, docs) goes through Starlette
in :mod:`loopml.serve.online.routes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from loopml.core.errors import ValidationError, did_you_mean
from loopml.serve.online import mlflow, simple, v2
from loopml.serve.online.responses import send_bytes, send_error, send_json
from loopml.serve.online.security import read_body, scope_headers

if TYPE_CHECKING:
    from loopml.serve.online.state import ServerState

Handler = Callable[["ServerState", dict, Any, Any, dict[str, str]], Awaitable[None]]


_MATCHED: dict[str, tuple[Handler, dict[str, str]]] = {}
_MATCHED_MAX = 1024


def match(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    """The hot handler for a request, with its path parameters; None for everything else.

    Hot paths are remembered (a bounded table: paths carry client-chosen names), since
    the same few paths take nearly every request. Handlers must not mutate the params.

    >>> match("POST", "/v2/models/ctr/versions/3/infer")[1]
    {'name': 'ctr', 'version': '3'}
    """
    if method != "POST":
        return None
    found = _MATCHED.get(path)
    if found is None:
        found = _match_path(path)
        if found is not None:
            if len(_MATCHED) >= _MATCHED_MAX:
                _MATCHED.clear()
            _MATCHED[path] = found
    return found


def _match_path(path: str) -> tuple[Handler, dict[str, str]] | None:
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[3] == "infer":
        return v2_infer, {"name": parts[2]}
    if (
        len(parts) == 6
        and parts[:2] == ["v2", "models"]
        and parts[3] == "versions"
        and parts[5] == "infer"
    ):
        return v2_infer, {"name": parts[2], "version": parts[4]}
    if len(parts) == 4 and parts[:2] == ["v1", "models"] and parts[3] == "predict":
        return predict, {"name": parts[2]}
    if parts == ["invocations"]:
        return invocations, {}
    if len(parts) == 4 and parts[:2] == ["v1", "models"] and parts[3] == "invocations":
        return invocations, {"name": parts[2]}
    return None


async def dispatch(
    state: ServerState,
    handler: Handler,
    params: dict[str, str],
    scope: dict,
    receive: Any,
    send: Any,
) -> None:
    """Run a hot handler; map every failure to the JSON error body."""
    try:
        await handler(state, scope, receive, send, params)
    except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
        await send_error(send, exc)


def _request_id_header(result: Any) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-request-id", result.request_id.encode())]
    if result.fallback:
        headers.append((b"x-loopml-fallback", result.fallback.encode()))
    return headers


async def v2_infer(
    state: ServerState, scope: dict, receive: Any, send: Any, params: dict[str, str]
) -> None:
    headers = scope_headers(scope)
    body = await read_body(receive, headers, state.max_body_bytes)
    length = headers.get(v2.HEADER_LENGTH)
    if length is not None:
        try:
            header_length: int | None = int(length)
        except ValueError:
            raise ValidationError(
                f"Inference-Header-Content-Length {length!r} is not a number",
                field="Inference-Header-Content-Length",
            ) from None
    else:
        header_length = None
    req = v2.decode_request(body, header_length)
    name, version = params["name"], params.get("version")
    if len(req.inputs) == 1 and req.inputs[0].array.ndim == 2:
        model = await state.repository.get(name, version)
        names = model.signature.names
    else:
        names = [t.name for t in req.inputs]
    columns = v2.tensors_to_columns(req.inputs, names)
    result = await state.dataplane.infer(
        name,
        columns,
        version=version,
        headers=headers,
        params=req.parameters,
        request_id=req.id,
        protocol="v2",
    )
    out, json_len = v2.encode_response(
        model=result.model,
        version=str(result.version),
        outputs=result.outputs,
        request=req,
        parameters=result.parameters(),
    )
    extra = _request_id_header(result)
    if json_len is None:
        await send_bytes(send, 200, out, extra)
    else:
        extra.append((b"inference-header-content-length", str(json_len).encode()))
        await send_bytes(send, 200, out, extra, content_type=b"application/octet-stream")


async def predict(
    state: ServerState, scope: dict, receive: Any, send: Any, params: dict[str, str]
) -> None:
    headers = scope_headers(scope)
    body = await read_body(receive, headers, state.max_body_bytes)
    req = simple.decode(body)
    name = params["name"]
    columns = req.columns
    if not columns and not req.single and req.entities is None:  # {"rows": []}: empty batch
        model = await state.repository.get(name, req.version)
        columns = {n: [] for n in model.signature.names}
    if req.entities is not None:
        looked_up = await state.dataplane.lookup(name, req.entities, req.version)
        columns = {k: [v] for k, v in looked_up.items()}
        columns.update(req.columns)
    result = await state.dataplane.infer(
        name, columns, version=req.version, headers=headers, params=req.params, protocol="simple"
    )
    await send_json(send, 200, simple.encode(result, req.single), _request_id_header(result))


async def invocations(
    state: ServerState, scope: dict, receive: Any, send: Any, params: dict[str, str]
) -> None:
    headers = scope_headers(scope)
    body = await read_body(receive, headers, state.max_body_bytes)
    name = params.get("name") or _invocations_model(state, scope, headers)
    model = await state.repository.get(name)
    columns, mlflow_params = mlflow.decode(
        body, headers.get("content-type", "application/json"), model.signature.names
    )
    result = await state.dataplane.infer(
        name, columns, headers=headers, params=mlflow_params, protocol="mlflow"
    )
    await send_json(
        send, 200, mlflow.encode(result.outputs, model.task), _request_id_header(result)
    )


def _invocations_model(state: ServerState, scope: dict, headers: dict[str, str]) -> str:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("model"):
        return query["model"][0]
    if headers.get("x-model"):
        return headers["x-model"]
    served = sorted(state.repository.default)
    if len(served) == 1:
        return served[0]
    raise ValidationError(
        f"this server serves {len(served)} models; say which with ?model=NAME, the X-Model "
        f"header or POST /v1/models/NAME/invocations ({did_you_mean('', served)})",
        field="model",
    )
