"""The envelope on every error, and never a 500 on bad input."""

import json

import pytest

from records.models import Record


def assert_error(response, status):
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    return body


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


@pytest.fixture
def records_url(entity):
    return f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nowhere/",
        "/api/v1/workspaces/not-a-uuid/",
        "/api/v1/workspaces/00000000-0000-0000-0000-000000000000/",
        "/api/v1/workspaces/00000000-0000-0000-0000-000000000000/entities/",
        "/api/v2/",
        "/api/v1/workspaces/------------------------------------/",
    ],
)
def test_unknown_urls_and_ids_are_404_in_the_envelope(client, entity, path):
    assert_error(client.get(path), 404)


def test_unknown_api_url_is_404_for_every_method(client):
    for method in ("post", "put", "patch", "delete"):
        assert_error(getattr(client, method)("/api/v1/nowhere/", {}, format="json"), 404)


def test_unknown_record_id_and_invalid_uuid(client, records_url):
    assert_error(client.get(records_url + "00000000-0000-0000-0000-000000000000/"), 404)
    assert_error(client.get(records_url + "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/"), 404)
    assert_error(client.get(records_url + "------------------------------------/"), 404)


def test_method_not_allowed(client, records_url):
    assert_error(client.delete(records_url), 405)
    assert_error(client.put("/api/v1/auth/token/", {}, format="json"), 405)


def test_unsupported_media_type(client, records_url):
    assert_error(client.post(records_url, "<data/>", content_type="application/xml"), 415)


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"data": ',
        "[" * 100_000 + "]" * 100_000,
        '{"data": {"name": "nul \\u0000 char"}}',
        b"\xff\xfe\x00garbage",
        '{"data": {"amount": NaN}}',
        '{"data": {"name": "Ada", "amount": 1e400}}',
    ],
)
def test_malformed_json_is_400(client, records_url, body):
    assert_error(client.post(records_url, body, content_type="application/json"), 400)
    assert not Record.objects.exists()


def test_huge_payload_is_413(client, records_url, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"data": {"name": "x" * 20_000}})
    assert_error(client.post(records_url, body, content_type="application/json"), 413)
    form = client.post(records_url, {"data": "x" * 20_000})
    assert form.status_code in (400, 413)
    assert form.json()["success"] is False


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x" * 20_000},
        {"name": "Ada", "amount": 10**400},
        {"name": "Ada", "amount": "9" * 5000},
        {"name": "Ada", "email": "a@" + "b" * 5000 + ".com"},
        {"name": ["a", "b"]},
        {"name": "Ada", "status": ["New"]},
        {"name": "Ada", "status": {"$gt": ""}},
    ],
)
def test_wrong_types_and_extreme_values_are_400(client, records_url, data):
    response = client.post(records_url, {"data": data}, format="json")
    if response.status_code == 201:  # a long text is fine; it must then round-trip
        assert response.json()["data"]["record"]["data"] == data
    else:
        assert_error(response, 400)


@pytest.mark.parametrize(
    "query",
    [
        "status=New%00",
        "name__contains=%00",
        "ordering=%00",
        "page=abc",
        "page=-1",
        "page=99999999999999999999",
        "name=" + "x" * 5000,
    ],
)
def test_bad_query_strings_never_500(client, records_url, query):
    response = client.get(records_url + "?" + query)
    assert response.status_code in (400, 404)
    assert response.json()["success"] is False


def test_task_with_unknown_ids_is_400(client, workspace):
    url = f"/api/v1/workspaces/{workspace.id}/tasks/"
    body = assert_error(
        client.post(url, {"title": "t", "record_id": "00000000-0000-0000-0000-000000000000"}, format="json"), 400
    )
    assert "record_id" in body["errors"]


def test_validation_errors_name_fields(client, records_url):
    body = assert_error(client.post(records_url, {"data": {"amount": "x"}}, format="json"), 400)
    assert set(body["errors"]) == {"data.amount", "data.name"}
    assert body["message"].startswith("Validation failed")
