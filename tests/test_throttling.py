"""API writes are throttled per token; reads and other tokens are not affected; 429 in the envelope."""

import pytest
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


@pytest.fixture
def low_write_rate(monkeypatch):
    cache.clear()
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "write": "3/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    yield
    cache.clear()


def test_writes_are_throttled_per_token(api, members, entity, low_write_rate):
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    owner = api.as_user(members["owner"])
    for i in range(3):
        assert owner.post(url, {"data": {"name": f"L{i}"}}, format="json").status_code == 201
    response = owner.post(url, {"data": {"name": "one too many"}}, format="json")
    assert response.status_code == 429
    body = response.json()
    assert body["success"] is False and "throttled" in body["message"].lower()
    assert int(response["Retry-After"]) > 0
    assert owner.get(url).status_code == 200  # reads are not limited by the write rate

    from rest_framework.test import APIClient

    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Token {members['admin'].auth_token.key}")
    assert admin.post(url, {"data": {"name": "other token"}}, format="json").status_code == 201


def test_default_write_rate_is_documented_and_generous():
    rate = api_settings.DEFAULT_THROTTLE_RATES["write"]
    count, period = rate.split("/")
    assert int(count) >= 2000 and period.startswith("m")
