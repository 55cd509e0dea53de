"""Generated Open Inference Protocol (KServe V2) gRPC stubs; regenerate with ``generate.py``."""
