"""The Open Inference Protocol gRPC service (``inference.GRPCInferenceService``).

Same models, same semantics as REST: the servicer only translates protobuf to named
columns and calls :meth:`DataPlane.infer` on the web server's event loop (gRPC runs
its handlers in threads; ``run_coroutine_threadsafe`` hands the call over), so
batching, caching, breakers and metrics are shared between both transports.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import LoopmlError, ValidationError
from loopml.serve.online import v2
from loopml.serve.online.responses import error_status_body

if TYPE_CHECKING:
    from loopml.serve.online.state import ServerState

log = logging.getLogger("loopml.serve.online")

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _status_code(status: int) -> Any:
    import grpc

    return {
        400: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED,
        404: grpc.StatusCode.NOT_FOUND,
        409: grpc.StatusCode.FAILED_PRECONDITION,
        413: grpc.StatusCode.RESOURCE_EXHAUSTED,
        503: grpc.StatusCode.UNAVAILABLE,
    }.get(status, grpc.StatusCode.INTERNAL)


def _param_value(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def decode_inputs(request: Any) -> list[v2.Tensor]:
    """Protobuf input tensors (raw or typed contents) to numpy tensors."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ValidationError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs",
            field="raw_input_contents",
        )
    tensors = []
    for i, t in enumerate(request.inputs):
        if t.datatype not in v2.DTYPES:
            raise ValidationError(
                f"input {t.name!r}: datatype {t.datatype!r} is not a V2 datatype", field=t.name
            )
        shape = [int(d) for d in t.shape]
        if not shape or any(d < 0 for d in shape):
            raise ValidationError(f"input {t.name!r}: shape {shape} is not valid", field=t.name)
        count = int(np.prod(shape))
        if raw:
            array = v2._from_binary(memoryview(raw[i]), t.datatype, count, t.name)
        else:
            field = _CONTENTS.get(t.datatype)
            if field is None:
                raise ValidationError(
                    f"input {t.name!r}: {t.datatype} must be sent in raw_input_contents",
                    field=t.name,
                )
            values = list(getattr(t.contents, field))
            if t.datatype == "BYTES":
                array = v2._bytes_array(values, t.name)
            else:
                array = np.asarray(values, dtype=v2.DTYPES[t.datatype])
        if array.size != count:
            raise ValidationError(
                f"input {t.name!r}: shape {shape} needs {count} values, got {array.size}",
                field=t.name,
            )
        tensors.append(v2.Tensor(t.name, t.datatype, shape, array.reshape(shape)))
    return tensors


class InferenceServicer:
    """Implements the six V2 RPCs over the shared data plane."""

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        from loopml.serve.online.grpc_gen import grpc_predict_v2_pb2 as pb

        self.pb = pb
        self.state = state
        self.loop = loop

    def _run(self, coro: Any, context: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=60.0)
        except Exception as exc:  # noqa: BLE001 - mapped to a gRPC status
            future.cancel()
            status, body = error_status_body(exc)
            context.abort(_status_code(status), body["error"])

    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return self.pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self.pb.ServerReadyResponse(ready=self.state.repository.ready)

    def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._run(self.state.repository.get(request.name, request.version or None), context)
        return self.pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        from loopml.serve.online.routes import EXTENSIONS

        return self.pb.ServerMetadataResponse(name="loopml", version="1", extensions=EXTENSIONS)

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        repo = self.state.repository
        model = self._run(repo.get(request.name, request.version or None), context)
        versions = self._run(asyncio.to_thread(repo.source.versions, request.name), context)
        tm = self.pb.ModelMetadataResponse.TensorMetadata
        return self.pb.ModelMetadataResponse(
            name=model.name,
            versions=[str(v) for v in versions],
            platform=f"loopml_{getattr(model.predictor, 'flavour', 'unknown')}",
            inputs=[tm(**s) for s in model.input_specs()],
            outputs=[tm(**s) for s in model.output_specs()],
        )

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        metadata = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
        return self._run(self._infer(request, metadata), context)

    async def _infer(self, request: Any, metadata: dict[str, str]) -> Any:
        tensors = decode_inputs(request)
        name, version = request.model_name, request.model_version or None
        if len(tensors) == 1 and tensors[0].array.ndim == 2:
            names = (await self.state.repository.get(name, version)).signature.names
        else:
            names = [t.name for t in tensors]
        columns = v2.tensors_to_columns(tensors, names)
        params = {k: _param_value(p) for k, p in request.parameters.items()}
        result = await self.state.dataplane.infer(
            name,
            columns,
            version=version,
            headers=metadata,
            params=params,
            request_id=request.id or None,
            protocol="grpc",
        )
        wanted = [o.name for o in request.outputs] or list(result.outputs)
        unknown = [n for n in wanted if n not in result.outputs]
        if unknown:
            raise ValidationError(
                f"requested output(s) {unknown} do not exist; this model has "
                f"{list(result.outputs)}",
                field="outputs",
            )
        response = self.pb.ModelInferResponse(
            model_name=result.model, model_version=str(result.version), id=request.id
        )
        for key, value in result.parameters().items():
            param = response.parameters[key]
            if isinstance(value, bool):
                param.bool_param = value
            else:
                param.string_param = str(value)
        for out_name in wanted:
            array = result.outputs[out_name]
            out = response.outputs.add(
                name=out_name, datatype=v2.datatype_of(array), shape=list(array.shape)
            )
            del out  # contents travel in raw_output_contents
            response.raw_output_contents.append(v2._to_binary(array))
        return response


class GrpcServer:
    """A gRPC server bound next to the HTTP server, stopped with it."""

    def __init__(self, state: ServerState, port: int, host: str = "127.0.0.1") -> None:
        self.state = state
        self.port = port
        self.host = host
        self._server: Any = None

    def start(self, loop: asyncio.AbstractEventLoop) -> int:
        import grpc

        from loopml.serve.online.grpc_gen import grpc_predict_v2_pb2_grpc as pbg

        limit = self.state.max_body_bytes
        server = grpc.server(
            ThreadPoolExecutor(max_workers=8, thread_name_prefix="loopml-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", max(limit, 4 * 1024 * 1024)),
                ("grpc.so_reuseport", 1),
            ],
        )
        pbg.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.state, loop), server)
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            raise LoopmlError(
                f"cannot bind the gRPC port {self.host}:{self.port}; set "
                "[online] grpc_port to a free port, or 0 to turn gRPC off"
            )
        server.start()
        self._server = server
        self.port = bound
        log.info("gRPC V2 service on %s:%d", self.host, bound)
        return bound

    def stop(self, grace_s: float = 2.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None
