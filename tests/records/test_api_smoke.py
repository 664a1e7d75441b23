def test_create_and_list_records(api, owner, entity):
    client = api.as_user(owner)
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    response = client.post(url, {"data": {"name": "Ada", "status": "New", "amount": "12"}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["success"] is True
    assert body["data"]["record"]["data"] == {"name": "Ada", "status": "New", "amount": 12}

    response = client.get(url + "?status=New&amount__gte=10")
    assert response.status_code == 200
    assert response.json()["data"]["total"] == 1

    response = client.post(url, {"data": {"status": "Nope"}}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"data.status", "data.name"}


def test_outsider_gets_404(api, members, entity):
    client = api.as_user(members["outsider"])
    response = client.get(f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/")
    assert response.status_code == 404
    assert response.json()["success"] is False
