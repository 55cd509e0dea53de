"""Generated Open Inference Protocol (KServe V2) gRPC messages and service classes.

Regenerate them with ``python -m loopml.serve.online.grpc_gen.generate``.
"""
