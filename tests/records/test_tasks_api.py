"""Tasks under /workspaces/{id}/tasks/."""

import pytest

from records.models import Task
from tests.factories import RecordFactory, TaskFactory, UserFactory


def tasks_url(workspace, task=None):
    base = f"/api/v1/workspaces/{workspace.id}/tasks/"
    return f"{base}{task.id}/" if task else base


@pytest.fixture
def client(api, members):
    return api.as_user(members["member"])


def test_create_with_record_and_assignee(client, workspace, members, record):
    payload = {
        "title": "Call Ada",
        "description": "About the offer",
        "record_id": str(record.id),
        "assignee_id": members["viewer"].id,
        "due_date": "2030-01-31",
    }
    response = client.post(tasks_url(workspace), payload, format="json")
    assert response.status_code == 201, response.json()
    task = response.json()["data"]["task"]
    assert task["status"] == "open" and task["completed_at"] is None
    assert task["record_id"] == str(record.id) and task["assignee_id"] == members["viewer"].id
    assert task["created_by_id"] == members["member"].id and task["created_by_rule_id"] is None
    assert Task.objects.get(pk=task["id"]).workspace_id == workspace.id


def test_list_retrieve_filter(client, workspace, record, django_assert_num_queries):
    TaskFactory(workspace=workspace, title="open one")
    done = TaskFactory(workspace=workspace, title="done one", status="done")
    linked = TaskFactory(workspace=workspace, title="linked", record=record)
    TaskFactory(title="elsewhere")
    with django_assert_num_queries(4):  # token, membership, count, page
        response = client.get(tasks_url(workspace))
    assert response.json()["data"]["total"] == 3
    titles = lambda r: sorted(t["title"] for t in r.json()["data"]["tasks"])  # noqa: E731
    assert titles(client.get(tasks_url(workspace) + "?status=done")) == ["done one"]
    assert titles(client.get(tasks_url(workspace) + f"?record_id={record.id}")) == ["linked"]
    assert client.get(tasks_url(workspace, done)).json()["data"]["task"]["title"] == "done one"
    assert linked.record_id == record.id


@pytest.mark.parametrize(
    "query", ["status=later", "record_id=nope", "assignee_id=abc", "assignee_id=99999999999999999999999"]
)
def test_list_rejects_bad_filters(client, workspace, query):
    response = client.get(tasks_url(workspace) + "?" + query)
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["errors"]


def test_update_to_done_sets_completed_at_and_back(client, workspace):
    task = TaskFactory(workspace=workspace)
    response = client.patch(tasks_url(workspace, task), {"status": "done"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["task"]["completed_at"] is not None
    response = client.patch(tasks_url(workspace, task), {"status": "open", "title": "Again"}, format="json")
    assert response.json()["data"]["task"]["completed_at"] is None
    task.refresh_from_db()
    assert (task.title, task.status) == ("Again", "open")


def test_put_and_delete(client, workspace):
    task = TaskFactory(workspace=workspace)
    response = client.put(tasks_url(workspace, task), {"title": "Replaced"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["task"]["title"] == "Replaced"
    assert client.delete(tasks_url(workspace, task)).status_code == 200
    assert not Task.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"title": "t", "status": "later"}, "status"),
        ({"title": "t", "due_date": "tomorrow"}, "due_date"),
        ({"title": "t", "record_id": "not-a-uuid"}, "record_id"),
        ({"title": "t", "assignee_id": "abc"}, "assignee_id"),
        ({"title": "t", "assignee_id": 10**30}, "assignee_id"),
    ],
)
def test_create_validation_errors(client, workspace, payload, field):
    response = client.post(tasks_url(workspace), payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_another_workspaces_record_or_user_is_a_field_error(client, workspace, other_workspace):
    response = client.post(
        tasks_url(workspace), {"title": "t", "record_id": str(other_workspace["record"].id)}, format="json"
    )
    assert response.status_code == 400
    assert "record_id" in response.json()["errors"]
    response = client.post(
        tasks_url(workspace), {"title": "t", "assignee_id": other_workspace["owner"].id}, format="json"
    )
    assert response.status_code == 400
    assert "assignee_id" in response.json()["errors"]
    response = client.post(tasks_url(workspace), {"title": "t", "assignee_id": UserFactory().id}, format="json")
    assert response.status_code == 400
    assert not Task.objects.exists()


def test_another_workspaces_task_is_404(client, workspace, other_workspace):
    theirs = TaskFactory(workspace=other_workspace["workspace"])
    for method in ("get", "patch", "put", "delete"):
        response = getattr(client, method)(tasks_url(workspace, theirs), {"title": "x"}, format="json")
        assert response.status_code == 404, method
    assert client.get(tasks_url(other_workspace["workspace"])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.title != "x"


def test_deleting_the_record_keeps_the_task(client, workspace, entity):
    record = RecordFactory(entity=entity)
    task = TaskFactory(workspace=workspace, record=record)
    record.delete()
    task.refresh_from_db()
    assert task.record_id is None
