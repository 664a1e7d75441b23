"""Records under /workspaces/{id}/entities/{id}/records/: CRUD, PUT vs PATCH, filters, ordering,
pagination, search and bulk create."""

import uuid

import pytest
from django.db.models.signals import post_save

from records.models import Record
from records.signals import records_bulk_created
from tests.factories import RecordFactory


def records_url(entity, record=None):
    base = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    return f"{base}{record.id}/" if record else base


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


def test_create_returns_the_record_in_the_envelope(client, entity, owner):
    response = client.post(
        records_url(entity), {"data": {"name": "Ada", "amount": "12.5", "status": "New"}}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["message"]
    record = body["data"]["record"]
    assert record["data"] == {"name": "Ada", "amount": 12.5, "status": "New"}
    assert record["entity_id"] == str(entity.id) and record["workspace_id"] == str(entity.workspace_id)
    assert record["created_by_id"] == owner.id
    stored = Record.objects.get(pk=record["id"])
    assert stored.data == record["data"] and stored.workspace_id == entity.workspace_id


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"email": "ada@example.com"}, "data.name", "This field is required."),
        ({"name": "Ada", "status": "Maybe"}, "data.status", "Must be one of"),
        ({"name": "Ada", "amount": "lots"}, "data.amount", "Must be a number."),
        ({"name": "Ada", "amount": True}, "data.amount", "Must be a number."),
        ({"name": "Ada", "email": "not-an-email"}, "data.email", "valid email"),
        ({"name": "Ada", "colour": "red"}, "data.colour", "Unknown field"),
        ({"name": {"first": "Ada"}}, "data.name", "Must be a string."),
        ({"name": "Ada", "amount": "1e400"}, "data.amount", "between"),
        ({"name": ""}, "data.name", "This field is required."),
    ],
)
def test_create_rejects_invalid_data_with_field_errors(client, entity, data, field, message):
    response = client.post(records_url(entity), {"data": data}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert message in body["errors"][field][0]
    assert not Record.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"data": "text"}, {"data": [1, 2]}, {"data": None}, [1, 2]])
def test_create_rejects_data_that_is_not_an_object(client, entity, payload):
    response = client.post(records_url(entity), payload, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert any(key.startswith("data") or key == "non_field_errors" for key in response.json()["errors"])


def test_retrieve(client, entity, record):
    response = client.get(records_url(entity, record))
    assert response.status_code == 200
    assert response.json()["data"]["record"]["id"] == str(record.id)


def test_put_replaces_data_and_patch_merges(client, entity):
    record = RecordFactory(entity=entity, data={"name": "Ada", "email": "ada@example.com", "status": "New"})

    response = client.patch(records_url(entity, record), {"data": {"status": "Contacted"}}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["record"]["data"] == {
        "name": "Ada",
        "email": "ada@example.com",
        "status": "Contacted",
    }

    response = client.put(records_url(entity, record), {"data": {"name": "Grace"}}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["record"]["data"] == {"name": "Grace"}
    record.refresh_from_db()
    assert record.data == {"name": "Grace"}


def test_put_requires_required_fields_but_patch_does_not(client, entity, record):
    response = client.put(records_url(entity, record), {"data": {"status": "New"}}, format="json")
    assert response.status_code == 400
    assert "data.name" in response.json()["errors"]
    response = client.patch(records_url(entity, record), {"data": {"status": "Qualified"}}, format="json")
    assert response.status_code == 200


def test_patch_cannot_clear_a_required_field(client, entity, record):
    response = client.patch(records_url(entity, record), {"data": {"name": None}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["data.name"] == ["This field is required."]


def test_patch_that_changes_nothing_saves_nothing(client, entity, record):
    saves = []

    def receiver(sender, instance, **kwargs):
        saves.append(instance.pk)

    post_save.connect(receiver, sender=Record)
    try:
        response = client.patch(records_url(entity, record), {"data": {"name": record.data["name"]}}, format="json")
        assert response.status_code == 200
        assert saves == []
        response = client.patch(records_url(entity, record), {"data": {"name": "Changed"}}, format="json")
        assert response.status_code == 200
        assert saves == [record.pk]
    finally:
        post_save.disconnect(receiver, sender=Record)


def test_delete(client, entity, record):
    response = client.delete(records_url(entity, record))
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert not Record.objects.filter(pk=record.pk).exists()
    assert client.get(records_url(entity, record)).status_code == 404


# --------------------------------------------------------------------------- listing


@pytest.fixture
def leads(entity):
    rows = [
        {"name": "Ada", "email": "ada@example.com", "status": "New", "amount": 100},
        {"name": "Grace", "email": "grace@navy.mil", "status": "Contacted", "amount": 250},
        {"name": "Alan", "status": "New", "amount": 50},
        {"name": "Linus", "company": "Kernel", "status": "Closed Won"},
    ]
    return {row["name"]: RecordFactory(entity=entity, data=row) for row in rows}


def names(response):
    assert response.status_code == 200, response.json()
    return sorted(r["data"]["name"] for r in response.json()["data"]["records"])


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=New", ["Ada", "Alan"]),
        ("amount__gte=100", ["Ada", "Grace"]),
        ("amount__gt=100", ["Grace"]),
        ("amount__lt=100", ["Alan"]),
        ("amount__lte=100", ["Ada", "Alan"]),
        ("amount=250", ["Grace"]),
        ("status=New&amount__gte=100", ["Ada"]),
        ("status__ne=New", ["Grace", "Linus"]),
        ("status__neq=New", ["Grace", "Linus"]),  # the spelling of rule conditions (and of the docs)
        ("amount__neq=100", ["Alan", "Grace", "Linus"]),
        ("status__in=New,Closed Won", ["Ada", "Alan", "Linus"]),
        ("email__contains=EXAMPLE", ["Ada"]),
        ("amount__isnull=true", ["Linus"]),
        ("amount__isnull=false", ["Ada", "Alan", "Grace"]),
        ("company__isnull=false", ["Linus"]),
        ("search=navy", ["Grace"]),
        ("search=kern", ["Linus"]),
        ("", ["Ada", "Alan", "Grace", "Linus"]),
    ],
)
def test_list_filters_by_data_fields(client, entity, leads, query, expected):
    assert names(client.get(records_url(entity) + "?" + query)) == expected


@pytest.mark.parametrize(
    "query, key",
    [
        ("colour=red", "colour"),
        ("amount__between=1", "amount__between"),
        ("amount__gte=lots", "amount__gte"),
        ("status=Maybe", "status"),
        ("amount__isnull=perhaps", "amount__isnull"),
        ("ordering=colour", "ordering"),
        ("ordering=data;drop", "ordering"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
    ],
)
def test_list_rejects_bad_query_parameters(client, entity, leads, query, key):
    response = client.get(records_url(entity) + "?" + query)
    assert response.status_code == 400
    assert key in response.json()["errors"]


def test_list_orders_by_data_field_and_timestamps(client, entity, leads):
    response = client.get(records_url(entity) + "?ordering=-amount")
    ordered = [r["data"]["name"] for r in response.json()["data"]["records"]]
    assert ordered == ["Grace", "Ada", "Alan", "Linus"]  # no value sorts last
    response = client.get(records_url(entity) + "?ordering=amount")
    assert [r["data"]["name"] for r in response.json()["data"]["records"]] == ["Alan", "Ada", "Grace", "Linus"]
    response = client.get(records_url(entity) + "?ordering=name")
    assert [r["data"]["name"] for r in response.json()["data"]["records"]] == ["Ada", "Alan", "Grace", "Linus"]
    response = client.get(records_url(entity) + "?ordering=status,-amount")
    ordered = [r["data"]["name"] for r in response.json()["data"]["records"]]
    assert ordered == ["Linus", "Grace", "Ada", "Alan"]
    assert client.get(records_url(entity) + "?ordering=-created_at").status_code == 200


def test_list_paginates(client, entity, leads):
    response = client.get(records_url(entity) + "?ordering=name&page_size=3")
    data = response.json()["data"]
    assert (data["total"], data["page"], data["page_size"], data["pages"]) == (4, 1, 3, 2)
    assert [r["data"]["name"] for r in data["records"]] == ["Ada", "Alan", "Grace"]
    data = client.get(records_url(entity) + "?ordering=name&page_size=3&page=2").json()["data"]
    assert [r["data"]["name"] for r in data["records"]] == ["Linus"]
    response = client.get(records_url(entity) + "?page=9")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_list_query_count_does_not_grow_with_rows(client, entity, django_assert_num_queries):
    RecordFactory.create_batch(3, entity=entity)
    with django_assert_num_queries(4):  # token, membership + entity (one query), count, page
        assert client.get(records_url(entity)).status_code == 200
    RecordFactory.create_batch(60, entity=entity)
    with django_assert_num_queries(4):
        response = client.get(records_url(entity) + "?page_size=100&status=New&ordering=-amount")
    assert response.json()["data"]["total"] == 63


# --------------------------------------------------------------------------- bulk


def bulk_items(n, **extra):
    return [{"data": {"name": f"Lead {i}", "amount": i, **extra}} for i in range(n)]


def test_bulk_creates_all_records_and_sends_one_signal(client, entity, owner):
    received = []

    def receiver(sender, records, actor, **kwargs):
        received.append((len(records), actor))

    records_bulk_created.connect(receiver)
    try:
        response = client.post(records_url(entity) + "bulk/", {"records": bulk_items(25)}, format="json")
    finally:
        records_bulk_created.disconnect(receiver)
    assert response.status_code == 201
    assert response.json()["data"]["total"] == 25
    assert len(response.json()["data"]["records"]) == 25
    assert Record.objects.filter(entity=entity).count() == 25
    assert received == [(25, owner)]


def test_bulk_accepts_bare_data_objects_and_a_bare_list(client, entity):
    response = client.post(records_url(entity) + "bulk/", [{"name": "A"}, {"data": {"name": "B"}}], format="json")
    assert response.status_code == 201
    assert sorted(r.data["name"] for r in Record.objects.all()) == ["A", "B"]


def test_bulk_is_all_or_nothing_and_points_at_the_failing_index(client, entity):
    items = bulk_items(5)
    items[3] = {"data": {"name": "Bad", "email": "nope"}}
    items[4] = {"data": {"amount": 3}}
    response = client.post(records_url(entity) + "bulk/", {"records": items}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"records.3.data.email", "records.4.data.name"}
    assert not Record.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{"records": []}, {"records": "x"}, {}, {"records": [1, 2]}, {"records": [None]}],
)
def test_bulk_rejects_bad_shapes(client, entity, payload):
    response = client.post(records_url(entity) + "bulk/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert not Record.objects.exists()


def test_bulk_refuses_more_than_1000(client, entity):
    response = client.post(records_url(entity) + "bulk/", {"records": bulk_items(1001)}, format="json")
    assert response.status_code == 400
    assert "1000" in response.json()["errors"]["records"][0]
    assert not Record.objects.exists()


def own_queries(captured):
    """Queries of the records layer (the automation engine's enqueueing on the signal is its own concern)."""
    return [q["sql"] for q in captured if "automations_" not in q["sql"] and "django_tasks" not in q["sql"]]


def test_bulk_query_count_does_not_grow_with_rows(client, entity, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (2, 400):
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(records_url(entity) + "bulk/", {"records": bulk_items(size)}, format="json")
            assert response.status_code == 201
        counts.append(len(own_queries(ctx.captured_queries)))
    assert counts[0] == counts[1] <= 8
    # 1,000 rows (two insert batches), everything included: far from a query per row.
    with django_assert_max_num_queries(100):
        response = client.post(records_url(entity) + "bulk/", {"records": bulk_items(1000)}, format="json")
    assert response.status_code == 201
    assert Record.objects.count() == 1402


# --------------------------------------------------------------------------- isolation


def test_another_workspaces_entity_and_records_are_404(client, entity, other_workspace):
    other_entity, other_record = other_workspace["entity"], other_workspace["record"]
    # The other workspace itself.
    assert client.get(records_url(other_entity)).status_code == 404
    # The other entity under my workspace's URL.
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{other_entity.id}/records/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"data": {"name": "x"}}, format="json").status_code == 404
    # The other record under my entity.
    for method in ("get", "patch", "put", "delete"):
        response = getattr(client, method)(records_url(entity, other_record), {"data": {"name": "x"}}, format="json")
        assert response.status_code == 404, method
        assert response.json()["success"] is False
    other_record.refresh_from_db()
    assert other_record.data["name"] == "Ada Lovelace"


def test_a_record_of_a_sibling_entity_is_404(client, workspace, entity):
    from tests.factories import EntityFactory

    sibling = RecordFactory(entity=EntityFactory(workspace=workspace))
    assert client.get(records_url(entity, sibling)).status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_record_urls_say_which_parent_is_not_found(api, owner, entity, other_workspace, method):
    """Membership and entity are checked in one query; the answers stay what they were with two."""
    mine, theirs = entity, other_workspace["entity"]
    client = api.as_user(owner)
    cases = [
        # a workspace I am not in: the workspace is not found, whatever the entity
        (f"/api/v1/workspaces/{theirs.workspace_id}/entities/{theirs.id}/records/", "Workspace not found."),
        (f"/api/v1/workspaces/{theirs.workspace_id}/entities/{mine.id}/records/", "Workspace not found."),
        # my workspace, but an entity of another workspace or none at all
        (f"/api/v1/workspaces/{mine.workspace_id}/entities/{theirs.id}/records/", "Entity not found."),
        (f"/api/v1/workspaces/{mine.workspace_id}/entities/{uuid.uuid4()}/records/", "Entity not found."),
    ]
    for url, message in cases:
        response = getattr(client, method)(url, {"data": {"name": "x"}}, format="json")
        assert response.status_code == 404, url
        assert response.json()["message"] == message, url
    assert Record.objects.filter(entity=mine).count() == 0
    assert client.get(f"/api/v1/workspaces/{mine.workspace_id}/entities/{mine.id}/records/").status_code == 200
    other = api.as_user(other_workspace["owner"])  # and a viewer-level check still applies to its own workspace
    assert other.get(f"/api/v1/workspaces/{theirs.workspace_id}/entities/{theirs.id}/records/").status_code == 200


def test_an_unknown_lookup_lists_the_documented_ones(client, entity, leads):
    response = client.get(records_url(entity) + "?status__not=New")
    message = response.json()["errors"]["status__not"][0]
    assert "(eq, neq, gt, gte, lt, lte, contains, in, isnull)" in message


@pytest.mark.parametrize(("count", "message"), [(1, "Retrieved 1 record"), (2, "Retrieved 2 records")])
def test_list_messages_count_in_proper_english(client, entity, count, message):
    RecordFactory.create_batch(count, entity=entity)
    assert client.get(records_url(entity)).json()["message"] == message


@pytest.mark.parametrize(("count", "message"), [(1, "Created 1 record"), (2, "Created 2 records")])
def test_bulk_message_counts_in_proper_english(client, entity, count, message):
    body = {"records": [{"data": {"name": f"N{i}"}} for i in range(count)]}
    assert client.post(records_url(entity) + "bulk/", body, format="json").json()["message"] == message
