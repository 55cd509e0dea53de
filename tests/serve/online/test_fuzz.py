"""Fuzz every operation of the OpenAPI spec (schemathesis, bounded): no 5xx, no crash."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

EXAMPLES = 4


def _operations():
    import schemathesis

    from loopml.serve.online.openapi import openapi_spec

    schema = schemathesis.openapi.from_dict(openapi_spec())
    return [r.ok() for r in schema.get_all_operations()]


def test_spec_is_served_and_lists_every_route(served):
    spec = httpx.get(f"{served.url}/openapi.json").json()
    assert "/v2/models/{name}/infer" in spec["paths"] and "/invocations" in spec["paths"]
    page = httpx.get(f"{served.url}/docs")
    assert page.status_code == 200 and "/v2/health/ready" in page.text


def _fuzz(strategy, base_url: str, label: str, seen: dict[str, int]):
    """A bounded hypothesis run that calls the live server with each generated case."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:  # noqa: ANN001
        response = case.call(base_url=base_url, timeout=20)
        seen[label] = seen.get(label, 0) + 1
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        )
        if response.status_code >= 400:
            assert "error" in response.json()

    return run


def test_fuzzing_the_openapi_spec_finds_no_server_error(served):
    from schemathesis import GenerationMode

    seen: dict[str, int] = {}
    for op in _operations():
        fixed = {"name": "ctr"} if any(p.name == "name" for p in op.path_parameters) else None
        # valid data everywhere; malformed bodies wherever there is a body (malformed path
        # names are covered by the path-traversal test)
        modes = [GenerationMode.POSITIVE]
        if list(op.body):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            strategy = op.as_strategy(mode, path_parameters=fixed)
            try:
                _fuzz(strategy, served.url, op.label, seen)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in it could be made invalid
    assert len(seen) == len(_operations())
    assert httpx.get(f"{served.url}/v2/health/ready").status_code == 200  # still serving
