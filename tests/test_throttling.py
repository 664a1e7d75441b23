"""API writes are throttled per token; reads and other tokens are not affected; 429 in the envelope.
The counters are O(1) per client (sliding window), whatever the rate."""

import datetime as dt
import pickle

import pytest
import time_machine
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


# Ten seconds into a minute: every request of a test lands in the same window.
T0 = dt.datetime(2026, 3, 2, 9, 0, 10, tzinfo=dt.UTC)


def test_writes_are_throttled_per_token(api, members, entity, low_write_rate):
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    owner = api.as_user(members["owner"])
    with time_machine.travel(T0, tick=False):
        _writes_are_throttled_per_token(api, members, url, owner)


def _writes_are_throttled_per_token(api, members, url, owner):
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


def test_the_window_slides_and_retry_after_says_when(api, members, entity, low_write_rate):
    """3/min: the fourth write in a minute is refused; the limit slides with time instead of resetting
    at the minute, and Retry-After tells when the next write goes through."""
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    owner = api.as_user(members["owner"])

    def write():
        return owner.post(url, {"data": {"name": "x"}}, format="json")

    with time_machine.travel(T0, tick=False) as clock:
        assert [write().status_code for _ in range(3)] == [201, 201, 201]
        refused = write()
        assert refused.status_code == 429
        # The 3 writes stay in this window: 50 s to its end, then the previous window (3) must weigh
        # less than 3, which it does at once (3 * (1 - 0) is not < 3: 60 * (1 - 3/3) = 0 s more).
        assert int(refused["Retry-After"]) == 50
        clock.shift(50)  # 09:01:00, the next window: the 3 writes still count fully
        assert write().status_code == 429
        clock.shift(21)  # 09:01:21: the old writes weigh 3 * (1 - 21/60) = 1.95; 1.95 and 2.95 are < 3
        assert [write().status_code for _ in range(2)] == [201, 201]
        third = write()  # 3.95
        assert third.status_code == 429 and int(third["Retry-After"]) > 0
        clock.shift(120)  # two quiet minutes: everything has slid out
        assert [write().status_code for _ in range(3)] == [201, 201, 201]


def test_counters_stay_small_whatever_the_traffic(api, members, entity):
    """Two integers per client and window, not one timestamp per request (DRF's default keeps a list
    of every request of the period and rewrites it each time: ~6 ms at 100,000/hour)."""
    url = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    owner = api.as_user(members["owner"])
    with time_machine.travel(T0, tick=False):  # (inside: the counters expire by the frozen clock)
        for i in range(30):
            assert owner.post(url, {"data": {"name": f"L{i}"}}, format="json").status_code == 201
        window = int(T0.timestamp() // 60)
        token = members["owner"].auth_token.key
        assert cache.get(f"throttle_write_token:{token[:12]}:{window}") == 30
        hour = int(T0.timestamp() // 3600)
        assert cache.get(f"throttle_user_{members['owner'].pk}:{hour}") == 30
        # Everything LocMemCache holds (pickled by the cache itself in this process).
        values = [pickle.loads(raw) for raw in list(cache._cache.values())]  # noqa: S301
        assert values and all(isinstance(value, int) for value in values)
