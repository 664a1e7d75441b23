"""/workspaces/{id}/entities/: field schema validation, status_field, schema changes vs existing data."""

import pytest

from records.models import Record
from tests.factories import LEAD_FIELDS, EntityFactory, RecordFactory
from workspaces.models import Entity


def entities_url(workspace, entity=None):
    base = f"/api/v1/workspaces/{workspace.id}/entities/"
    return f"{base}{entity.id}/" if entity else base


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


def test_create_with_every_field_type(client, workspace):
    fields = [
        {"name": "title", "type": "text", "required": True},
        {"name": "notes", "type": "long_text"},
        {"name": "amount", "type": "number"},
        {"name": "active", "type": "boolean"},
        {"name": "due", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "email", "type": "email"},
        {"name": "site", "type": "url"},
        {"name": "stage", "type": "select", "options": ["A", "B"]},
        {"name": "tags", "type": "multi_select", "options": ["x", "y"]},
    ]
    response = client.post(
        entities_url(workspace), {"name": "Deals & Co", "fields": fields, "status_field": "stage"}, format="json"
    )
    assert response.status_code == 201, response.json()
    entity = response.json()["data"]["entity"]
    assert entity["slug"] == "deals-co" and entity["status_field"] == "stage"
    assert [f["name"] for f in entity["fields"]] == [f["name"] for f in fields]
    assert entity["fields"][1] == {"name": "notes", "type": "long_text", "required": False}
    # Same name again: a distinct slug.
    response = client.post(entities_url(workspace), {"name": "Deals & Co"}, format="json")
    assert response.json()["data"]["entity"]["slug"] == "deals-co-2"
    assert response.json()["data"]["entity"]["status_field"] == "status"


@pytest.mark.parametrize(
    "payload, key",
    [
        ({"name": "E", "fields": "text"}, "fields"),
        ({"name": "E", "fields": [{"name": "a", "type": "colour"}]}, "fields.0.type"),
        ({"name": "E", "fields": [{"name": "1a", "type": "text"}]}, "fields.0.name"),
        ({"name": "E", "fields": [{"name": "id", "type": "text"}]}, "fields.0.name"),
        ({"name": "E", "fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "number"}]}, "fields.1.name"),
        ({"name": "E", "fields": [{"name": "s", "type": "select"}]}, "fields.0.options"),
        ({"name": "E", "fields": [{"name": "s", "type": "select", "options": ["a", "a"]}]}, "fields.0.options"),
        ({"name": "E", "fields": [{"name": "t", "type": "text", "options": ["a"]}]}, "fields.0.options"),
        ({"name": "E", "fields": [{"name": "t", "type": "text", "required": "yes"}]}, "fields.0.required"),
        ({"name": "E", "fields": [{"name": "t", "type": "text", "colour": 1}]}, "fields.0"),
        ({"name": "E", "fields": ["t"]}, "fields.0"),
        ({"name": "E", "fields": [{"name": "t", "type": "text"}], "status_field": "stage"}, "status_field"),
        ({"fields": []}, "name"),
    ],
)
def test_create_rejects_bad_schemas(client, workspace, payload, key):
    response = client.post(entities_url(workspace), payload, format="json")
    assert response.status_code == 400
    assert key in response.json()["errors"], response.json()
    assert not Entity.objects.exists()


def test_list_and_retrieve_with_record_counts(client, workspace, entity, django_assert_num_queries):
    RecordFactory.create_batch(3, entity=entity)
    EntityFactory(workspace=workspace, name="Empty")
    with django_assert_num_queries(4):  # token, membership, count, page with counts
        response = client.get(entities_url(workspace))
    counts = {e["name"]: e["record_count"] for e in response.json()["data"]["entities"]}
    assert counts == {"Leads": 3, "Empty": 0}
    assert client.get(entities_url(workspace, entity)).json()["data"]["entity"]["record_count"] == 3


def test_schema_change_converts_existing_values(client, workspace, entity):
    record = RecordFactory(entity=entity, data={"name": "Ada", "amount": 12, "company": "X"})
    fields = [f for f in LEAD_FIELDS if f["name"] != "company"]
    fields = [{**f, "type": "text"} if f["name"] == "amount" else f for f in fields]
    response = client.patch(entities_url(workspace, entity), {"fields": fields}, format="json")
    assert response.status_code == 200, response.json()
    record.refresh_from_db()
    assert record.data == {"name": "Ada", "amount": "12"}  # converted to text, removed field dropped


@pytest.mark.parametrize(
    "change",
    [
        lambda fields: [*fields, {"name": "phone", "type": "text", "required": True}],  # required, no value
        lambda fields: [{**f, "options": ["Contacted"]} if f["name"] == "status" else f for f in fields],
        lambda fields: [{**f, "type": "number"} if f["name"] == "name" else f for f in fields],
    ],
)
def test_schema_change_that_existing_data_does_not_fit_is_refused(client, workspace, entity, change):
    record = RecordFactory(entity=entity, data={"name": "Ada", "status": "New"})
    response = client.patch(entities_url(workspace, entity), {"fields": change(entity.fields)}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert str(record.id) in body["message"] and str(record.id) in body["errors"]["fields"][0]
    entity.refresh_from_db()
    assert entity.fields == LEAD_FIELDS
    record.refresh_from_db()
    assert record.data == {"name": "Ada", "status": "New"}


def test_put_without_fields_keeps_the_schema(client, workspace, entity):
    RecordFactory(entity=entity)
    response = client.put(entities_url(workspace, entity), {"name": "Prospects"}, format="json")
    assert response.status_code == 200
    entity.refresh_from_db()
    assert (entity.name, entity.slug, entity.fields) == ("Prospects", "prospects", LEAD_FIELDS)
    assert Record.objects.get(entity=entity).data["name"] == "Ada Lovelace"


def test_status_field_must_name_a_field_on_update(client, workspace, entity):
    response = client.patch(entities_url(workspace, entity), {"status_field": "stage"}, format="json")
    assert response.status_code == 400 and "status_field" in response.json()["errors"]
    response = client.patch(entities_url(workspace, entity), {"status_field": "company"}, format="json")
    assert response.status_code == 200
    entity.refresh_from_db()
    assert entity.status_field == "company"


def test_delete_removes_records(client, workspace, entity):
    RecordFactory(entity=entity)
    assert client.delete(entities_url(workspace, entity)).status_code == 200
    assert not Record.objects.exists()


def test_another_workspaces_entity_is_404(client, workspace, other_workspace):
    theirs = other_workspace["entity"]
    for method in ("get", "patch", "put", "delete"):
        assert getattr(client, method)(entities_url(workspace, theirs), {"name": "x"}, format="json").status_code == 404
    assert client.get(entities_url(other_workspace["workspace"])).status_code == 404
    assert Entity.objects.filter(pk=theirs.pk).exists()
