"""The records admin writes through records.services: the same rules as the API."""

import pytest
from django.db.models.signals import post_delete

from records.models import Record, Task
from tests.factories import RecordFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    client.user = user
    return client


def inline(*rows):
    data = {
        "tasks-TOTAL_FORMS": str(len(rows)),
        "tasks-INITIAL_FORMS": str(sum(1 for row in rows if "id" in row)),
        "tasks-MIN_NUM_FORMS": "0",
        "tasks-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"tasks-{index}-{key}": value for key, value in row.items()})
    return data


def test_inline_tasks_get_their_completion_time_from_the_service(admin_client, record):
    url = f"/admin/records/record/{record.pk}/change/"
    data = {"data": '{"name": "Ada"}', **inline({"title": "Call", "status": "done", "record": str(record.pk)})}
    assert admin_client.post(url, data).status_code == 302
    task = Task.objects.get()
    assert task.record == record and task.workspace_id == record.workspace_id
    assert task.completed_at is not None and task.created_by == admin_client.user

    reopen = {"id": str(task.pk), "title": "Call", "status": "open", "record": str(record.pk)}
    assert admin_client.post(url, {"data": '{"name": "Ada"}', **inline(reopen)}).status_code == 302
    task.refresh_from_db()
    assert task.status == "open" and task.completed_at is None


def test_task_admin_sets_completion_on_status_change(admin_client, workspace):
    task = TaskFactory(workspace=workspace)
    url = f"/admin/records/task/{task.pk}/change/"
    response = admin_client.post(url, {"title": task.title, "description": "", "status": "done"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.status == "done" and task.completed_at is not None


def test_deleting_records_in_the_admin_tells_receivers_who_did_it(admin_client, entity):
    records = [RecordFactory(entity=entity), RecordFactory(entity=entity)]
    actors = []

    def on_delete(sender, instance, **kwargs):
        actors.append(getattr(instance, "actor", None))

    post_delete.connect(on_delete, sender=Record)
    try:
        admin_client.post(f"/admin/records/record/{records[0].pk}/delete/", {"post": "yes"})
        admin_client.post(
            "/admin/records/record/",
            {"action": "delete_selected", "_selected_action": [str(records[1].pk)], "post": "yes"},
        )
    finally:
        post_delete.disconnect(on_delete, sender=Record)
    assert not Record.objects.exists()
    assert actors == [admin_client.user, admin_client.user]
