"""The package's public names are pinned, and importing it loads no web framework."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_are_pinned():
    import loopml.serve.online as online

    assert online.__all__ == [
        "DataPlane",
        "InferResult",
        "ModelRepository",
        "RegistrySource",
        "StaticSource",
        "create_app",
        "run",
    ]
    assert callable(online.create_app) and callable(online.run)


def test_import_is_light():
    code = (
        "import sys, loopml.serve.online\n"
        "print(','.join(m for m in ('starlette', 'uvicorn', 'grpc', 'pandas', 'lightgbm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
