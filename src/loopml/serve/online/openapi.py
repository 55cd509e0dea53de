"""The OpenAPI document of the online service, and a self-contained page that lists it.

Written by hand (the hot routes are plain ASGI, not framework-annotated) and fuzzed
by the test suite with schemathesis, so the document and the server cannot drift.
"""

from __future__ import annotations

import html
from functools import cache
from typing import Any

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OK_JSON = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}


def _param(name: str, where: str = "path", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", **schema},
    }


_NAME = _param("name", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_VERSION = _param("version")


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]] = (),
    body: str | None = None,
    ok: str = "200",
    errors: tuple[str, ...] = ("400", "404", "503"),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok: _OK_JSON}}
    for code in errors:
        op["responses"][code] = _ERROR
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _TENSOR},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
        },
    },
    "SimpleRequest": {
        "type": "object",
        "description": "one of features / rows / columns / entities / entity_id",
        "properties": {
            "features": {"type": "object"},
            "rows": {"type": "array", "items": {"type": "object"}},
            "columns": {"type": "object"},
            "entities": {"type": "object"},
            "entity_id": {"type": "string"},
            "version": {"type": "string"},
            "params": {"type": "object"},
        },
    },
    "MlflowRequest": {
        "type": "object",
        "description": "exactly one of dataframe_split / dataframe_records / instances / inputs",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
            },
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "instances": {"type": "array"},
            "inputs": {},
            "params": {"type": "object"},
        },
    },
    "Events": {
        "type": "object",
        "required": ["event_type", "rows"],
        "properties": {
            "event_type": {"type": "string"},
            "rows": {"type": "array", "items": {"type": "object"}},
        },
    },
    "AliasMove": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            "reason": {"type": "string"},
        },
    },
}


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document served at ``/openapi.json``."""
    health = ("503",)
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _op("server is live", errors=())},
        "/v2/health/ready": {"get": _op("server is ready (models loaded)", errors=health)},
        "/v2": {"get": _op("server metadata", errors=())},
        "/v2/models/{name}": {"get": _op("model metadata", params=[_NAME])},
        "/v2/models/{name}/versions/{version}": {
            "get": _op("model version metadata", params=[_NAME, _VERSION])
        },
        "/v2/models/{name}/ready": {"get": _op("model is ready", params=[_NAME])},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": _op("model version is ready", params=[_NAME, _VERSION])
        },
        "/v2/models/{name}/infer": {
            "post": _op(
                "V2 inference (JSON or binary tensors)",
                params=[_NAME],
                body="InferenceRequest",
                errors=("400", "404", "413", "503"),
            )
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": _op(
                "V2 inference at a version or alias",
                params=[_NAME, _VERSION],
                body="InferenceRequest",
                errors=("400", "404", "413", "503"),
            )
        },
        "/v1/models": {"get": _op("every served model", errors=())},
        "/v1/models/{name}": {"get": _op("a served model", params=[_NAME])},
        "/v1/models/{name}/predict": {
            "post": _op(
                "simple JSON prediction (features or entity ids)",
                params=[_NAME],
                body="SimpleRequest",
                errors=("400", "404", "413", "503"),
            )
        },
        "/v1/models/{name}/invocations": {
            "post": _op(
                "MLflow scoring protocol",
                params=[_NAME],
                body="MlflowRequest",
                errors=("400", "404", "413", "503"),
            )
        },
        "/invocations": {
            "post": _op(
                "MLflow scoring protocol (model from ?model= or the only model)",
                params=[_param("model", "query")],
                body="MlflowRequest",
                errors=("400", "404", "413", "503"),
            )
        },
        "/v1/models/{name}/jobs": {
            "post": _op(
                "submit an asynchronous prediction",
                params=[_NAME],
                body="SimpleRequest",
                ok="202",
                errors=("400", "404", "413", "503"),
            )
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "poll an asynchronous prediction", params=[_param("job_id")], errors=("400", "404")
            )
        },
        "/v1/events": {
            "post": _op(
                "ingest behaviour events (validated, dead-lettered)",
                body="Events",
                errors=("400", "413"),
            )
        },
        "/v1/admin/models/{name}/reload": {
            "post": _op(
                "reload a model now (admin)", params=[_NAME], errors=("400", "401", "404", "503")
            )
        },
        "/v1/admin/models/{name}/aliases/{alias}": {
            "post": _op(
                "move an alias (admin)",
                params=[_NAME, _param("alias")],
                body="AliasMove",
                errors=("400", "401", "404", "409"),
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/ping": {"get": _op("MLflow-style health", errors=health)},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "loopml online prediction service", "version": "1"},
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }


def docs_page() -> str:
    """A dependency-free HTML page listing every route (no external scripts)."""
    rows = []
    for path, ops in openapi_spec()["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(op['summary'])}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>loopml API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:4px 12px}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        "<h1>loopml online prediction service</h1>"
        "<p>Machine-readable spec: <a href='/openapi.json'>/openapi.json</a>. "
        "Metrics: <a href='/metrics'>/metrics</a>.</p><table>"
        + "".join(rows)
        + "</table></body></html>"
    )
