"""While the database is unreachable the API answers a clean, retryable 503 in the envelope."""

from django.db import OperationalError

from workspaces import permissions


def test_database_outage_is_a_503_with_retry_after(api, owner, entity, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr(permissions, "membership_or_404", unreachable)
    response = api.as_user(owner).get(f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["success"] is False and "database is unavailable" in body["message"]
    assert "5432" not in body["message"]  # no connection details leak
