"""While the database is unreachable the API answers a clean, retryable 503 in the envelope."""

from django.db import OperationalError
from django.db.backends import utils


def test_database_outage_is_a_503_with_retry_after(api, owner, entity, monkeypatch):
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    client = api.as_user(owner)

    def unreachable(self, *args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    # Every query fails from here on, as when PostgreSQL is down.
    monkeypatch.setattr(utils.CursorWrapper, "execute", unreachable)
    monkeypatch.setattr(utils.CursorWrapper, "executemany", unreachable)
    responses = [client.get(url), client.post(url, {"data": {"name": "Ada"}}, format="json")]
    monkeypatch.undo()

    for response in responses:
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        body = response.json()
        assert body["success"] is False and "database is unavailable" in body["message"]
        assert "5432" not in body["message"]  # no connection details leak
    assert client.get(url).status_code == 200  # and it recovers when the database is back
