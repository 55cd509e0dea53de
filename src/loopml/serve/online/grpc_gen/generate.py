"""Regenerate the gRPC message and service modules from ``grpc_predict_v2.proto``.

Run ``python -m loopml.serve.online.grpc_gen.generate`` after editing the .proto.
The messages are registered in a private descriptor pool: standard V2 clients
(tritonclient) register the same ``inference.*`` names in the default pool, and a
client and a server in one process must not collide. The wire format is unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[3]
PROTO = "loopml/serve/online/grpc_gen/grpc_predict_v2.proto"


def main() -> None:
    from grpc_tools import protoc

    args = ["protoc", f"-I{SRC}", f"--python_out={SRC}", f"--grpc_python_out={SRC}", PROTO]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    pb2 = HERE / "grpc_predict_v2_pb2.py"
    text = pb2.read_text()
    text, count = re.subn(
        r"DESCRIPTOR = _descriptor_pool\.Default\(\)\.AddSerializedFile\(",
        "_POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = _POOL.AddSerializedFile(",
        text,
    )
    if count != 1:
        raise SystemExit("unexpected protoc output: descriptor pool line not found")
    pb2.write_text(text)


if __name__ == "__main__":
    main()
