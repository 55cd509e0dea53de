"""The update route edge clients poll, and the bundle downloads it points to."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.applications import Starlette

from loopml.core.config import ProjectConfig, init_project
from loopml.core.hashing import sha256_bytes
from loopml.predict.flavours import save_model
from loopml.registry.registry import Registry
from loopml.serve.edge.export import export_edge
from loopml.serve.edge.updates import edge_routes


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, world, kit):  # noqa: ANN001, ANN201
    """A project where ctr v1 and v2 were exported for 'android', then v2 was rolled back."""
    from sklearn.linear_model import LogisticRegression

    pipeline, signature = kit.pipeline, kit.signature

    root = tmp_path_factory.mktemp("fleet") / "proj"
    init_project(root, name="fleet")
    cfg = ProjectConfig.load(root)
    registry = Registry.from_config(cfg)
    train = world["train"]
    X, y = train[signature().names], train["clicked"]
    client = Client(Starlette(routes=edge_routes(cfg)))
    bundles, answers = {}, {}

    def export(version: int) -> None:
        out = root / f"bundle-v{version}"
        export_edge(
            cfg,
            "ctr@production",
            out,
            target="android",
            data=world["holdout"],
            label="clicked",
            sample_rows=500,
            progress=False,
        )
        bundles[version] = json.loads((out / "edge.json").read_text())["bundle_sha256"]

    def poll(key: str, sha: str | None) -> None:
        params = {"model": "ctr"} | ({"sha256": sha} if sha else {})
        answers[key] = client.get("/v1/edge/android/latest", params=params)

    for c in (1.0, 0.01):
        model = pipeline(LogisticRegression(C=c, max_iter=500)).fit(X, y)
        registry.register(
            "ctr", save_model(model, "sklearn"), flavour="sklearn", signature=signature()
        )
    registry.set_alias("ctr", "production", 1, actor="ana", reason="launch")
    export(1)
    poll("fresh", None)
    poll("v1 current", bundles[1])
    registry.set_alias("ctr", "production", 2, actor="ana", reason="v2 wins offline")
    poll("v2 not exported", bundles[1])
    export(2)
    poll("v1 after v2", bundles[1])
    poll("v2 current", bundles[2])
    registry.rollback("ctr", "production", actor="bo", reason="CTR dropped on devices")
    poll("v2 after rollback", bundles[2])
    poll("v1 after rollback", bundles[1])
    return {"client": client, "bundles": bundles, "answers": answers, "cfg": cfg}


class Client:
    """A synchronous face on httpx's in-process ASGI transport (no sockets, no server)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, url: str, params: dict | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as c:
                return await c.get(url, params=params)

        return asyncio.run(call())


def _body(fleet, key):  # noqa: ANN001, ANN202
    response = fleet["answers"][key]
    assert response.status_code == 200, response.text
    return response.json()


def test_a_fresh_client_is_told_to_install_the_current_bundle(fleet):
    body = _body(fleet, "fresh")
    assert body["action"] == "install" and body["update_available"] is True
    assert body["bundle"]["sha256"] == fleet["bundles"][1]
    assert body["bundle"]["model_version"] == 1 and body["current_version"] == 1
    assert body["bundle"]["url"].endswith(f"/v1/edge/bundles/{fleet['bundles'][1]}/edge.json")


def test_an_up_to_date_client_is_told_nothing_to_do(fleet):
    body = _body(fleet, "v1 current")
    assert (body["action"], body["update_available"], body["rolled_back"]) == ("none", False, False)
    assert body["client"]["sha256"] == fleet["bundles"][1]


def test_a_new_version_without_a_bundle_keeps_clients_where_they_are(fleet):
    body = _body(fleet, "v2 not exported")
    assert body["action"] == "unavailable" and body["bundle"] is None
    assert body["current_version"] == 2 and "no bundle of v2 was exported" in body["reason"]


def test_an_older_client_is_told_to_update(fleet):
    body = _body(fleet, "v1 after v2")
    assert body["action"] == "update" and body["update_available"] is True
    assert body["bundle"]["sha256"] == fleet["bundles"][2]
    assert body["reason"] == "ctr@production moved from v1 to v2"
    assert _body(fleet, "v2 current")["action"] == "none"


def test_a_client_on_a_rolled_back_version_is_told_to_move(fleet):
    body = _body(fleet, "v2 after rollback")
    assert body["action"] == "rollback" and body["rolled_back"] is True
    assert body["bundle"]["sha256"] == fleet["bundles"][1] and body["current_version"] == 1
    assert "ctr v2 left production: rollback by bo" in body["reason"]
    assert "CTR dropped on devices" in body["reason"]
    assert _body(fleet, "v1 after rollback")["action"] == "none"


def test_the_bundle_url_serves_verified_files(fleet):
    client, sha = fleet["client"], fleet["bundles"][1]
    url = _body(fleet, "fresh")["bundle"]["url"]
    manifest = client.get(url).json()
    assert manifest["bundle_sha256"] == sha
    model = client.get(url.replace("edge.json", "model.onnx"))
    assert model.status_code == 200
    assert model.headers["content-type"] == "application/octet-stream"
    assert sha256_bytes(model.content) == manifest["files"]["model.onnx"]["sha256"]
    missing = client.get(f"/v1/edge/bundles/{sha}/index.html")
    assert missing.status_code == 404 and "has no file 'index.html'" in missing.json()["error"]
    escape = client.get(f"/v1/edge/bundles/{sha}/%2E%2E/secret")
    assert escape.status_code == 400 and "is not allowed" in escape.json()["error"]


def test_a_tampered_published_file_is_not_served(fleet):
    client, sha = fleet["client"], fleet["bundles"][2]
    registry = Registry.from_config(fleet["cfg"])
    path = registry.artifacts.local_path(f"edge/ctr/{sha}/parity.json")
    path.write_text(path.read_text().replace("true", "false"))
    response = client.get(f"/v1/edge/bundles/{sha}/parity.json")
    assert response.status_code == 500
    assert "was modified after registration; refusing" in response.json()["error"]


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/v1/edge/android/latest", 400, "query parameter 'model' is required"),
        ("/v1/edge/android/latest?model=ctr&sha256=abc", 400, "not a 64-character"),
        ("/v1/edge/android/latest?model=nope", 404, "no edge bundle of model 'nope'"),
        ("/v1/edge/ios/latest?model=ctr", 404, "for target 'ios'"),
        ("/v1/edge/android/latest?model=../x", 400, "model '../x' is not allowed"),
        ("/v1/edge/android/latest?model=ctr&ref=staging", 404, "has no alias 'staging'"),
        ("/v1/edge/bundles/xyz/edge.json", 400, "is not a bundle sha256"),
        (f"/v1/edge/bundles/{'0' * 64}/edge.json", 404, "no exported edge bundle"),
    ],
)
def test_bad_requests_get_clear_4xx_answers(fleet, url, status, message):
    response = fleet["client"].get(url)
    assert response.status_code == status
    assert message in response.json()["error"]
