"""The OpenAPI document: discovery wrapper, raw document, and no drift from the routes."""

from __future__ import annotations

from typing import Any

from .conftest import RFC3339_Z, Api


async def fetch(api: Api, path: str) -> tuple[Any, Any]:
    async with api.client.get(path) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        return await resp.json(), resp.headers


async def test_well_known_wrapper(api: Api) -> None:
    body, headers = await fetch(api, "/.well-known/openapi")
    assert set(body) == {"spec", "version", "generatedAt"}
    assert body["version"] == "v1"
    assert RFC3339_Z.match(body["generatedAt"])
    assert body["spec"]["openapi"].startswith("3.1")
    assert "max-age=300" in headers["Cache-Control"]


async def test_raw_document_is_the_wrapped_spec(api: Api) -> None:
    raw, _ = await fetch(api, "/openapi/orchestrator.json")
    wrapped, _ = await fetch(api, "/.well-known/openapi")
    assert raw == wrapped["spec"]
    assert raw["openapi"].startswith("3.1") and raw["paths"]


def registered(api: Api) -> set[tuple[str, str]]:
    routes = set()
    for route in api.app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, route
        routes.add((route.method.lower(), path))
    return routes


async def documented(api: Api) -> set[tuple[str, str]]:
    raw, _ = await fetch(api, "/openapi/orchestrator.json")
    return {
        (method, path)
        for path, ops in raw["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_route_is_documented(api: Api) -> None:
    routes = registered(api)
    assert len(routes) >= 10
    assert routes - await documented(api) == set()


async def test_every_documented_route_exists(api: Api) -> None:
    assert await documented(api) - registered(api) == set()


async def test_path_parameters_are_declared(api: Api) -> None:
    raw, _ = await fetch(api, "/openapi/orchestrator.json")
    for path, ops in raw["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            assert declared == names, (path, declared)


async def test_references_resolve(api: Api) -> None:
    raw, _ = await fetch(api, "/openapi/orchestrator.json")
    schemas = raw["components"]["schemas"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(raw)
