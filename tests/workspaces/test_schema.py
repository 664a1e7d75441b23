"""OpenAPI: the schema documents every endpoint inside the envelope; Swagger UI is served."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_data_endpoint_is_documented(schema):
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/register/",
        "/api/v1/auth/token/",
        "/api/v1/auth/me/",
        "/api/v1/workspaces/",
        "/api/v1/workspaces/{id}/",
        "/api/v1/workspaces/{workspace_pk}/members/{id}/",
        "/api/v1/workspaces/{workspace_pk}/entities/{id}/",
        "/api/v1/workspaces/{workspace_pk}/entities/{entity_pk}/records/{id}/",
        "/api/v1/workspaces/{workspace_pk}/entities/{entity_pk}/records/bulk/",
        "/api/v1/workspaces/{workspace_pk}/tasks/{id}/",
    ):
        assert any(p.rstrip("/") == path.rstrip("/") for p in paths), path


def _json_schema(operation, code):
    return operation["responses"][code]["content"]["application/json"]["schema"]


def test_responses_are_enveloped(schema):
    records = next(v for k, v in schema["paths"].items() if k.rstrip("/").endswith("{entity_pk}/records"))
    listed = _json_schema(records["get"], "200")
    assert listed["required"] == ["success", "message", "data"]
    page = listed["properties"]["data"]
    if "$ref" in page:
        page = schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(page["required"]) == {"records", "total"}
    created = _json_schema(records["post"], "201")
    assert created["properties"]["data"]["required"] == ["record"]
    assert _json_schema(records["post"], "400") == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert any(p["name"] == "filters" for p in records["get"]["parameters"])


def test_schema_and_docs_are_served(client, db):
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200 and b"openapi" in response.content
    assert client.get("/api/v1/docs/").status_code == 200
