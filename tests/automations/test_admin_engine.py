"""The admin's Engine page: who may see it, what it counts, and that what users typed is escaped."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from automations import health, tasks
from automations.admin_engine import age_text
from automations.models import AutomationLog, RunStatus, WorkerProcess
from records import services
from tests.factories import UserFactory


@pytest.fixture
def staff_client(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_staff_only(client, db):
    response = client.get("/admin/engine/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/admin/engine/").status_code == 302


def test_staff_without_rights_on_runs_get_403(client, db):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    assert client.get("/admin/engine/").status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_automationlog", "view_automationrule"]))
    assert client.get("/admin/engine/").status_code == 200


def test_linked_from_the_admin_index(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/engine/"' in page and "Operations" in page
    assert "Automation rules" in page  # the usual app list is still there


def test_shows_the_queue_runs_workers_and_rules_turned_off(staff_client, entity, make_rule, scripted):
    now = timezone.now()
    rule = make_rule(name="Nightly sync")
    services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()  # one success this minute
    services.record_create(entity=entity, data={"name": "waiting"})  # one event waiting
    WorkerProcess.objects.create(id="node-1-4242-ab", hostname="node-1", pid=4242, started_at=now, last_seen_at=now)
    broken = make_rule(name="CRM <b>hook</b> & co")
    health.disable(
        rule=broken, reason='Turned off after 8 failed runs in a row. Last error: <script>alert("x")</script>'
    )

    page = staff_client.get("/admin/engine/").content.decode()

    assert 'id="card-queue"' in page
    queue_card = page.split('id="card-queue"')[1].split("</div>\n    </div>")[0]
    assert '<div class="value">1</div>' in queue_card and "1 new change to match" in queue_card
    assert "node-1-4242-ab" in page and "node-1 (pid 4242)" in page and "alive" in page
    assert "1 succeeded" in page
    assert f'href="/admin/automations/automationrule/{broken.pk}/change/"' in page
    # What users typed is escaped, never markup.
    assert "CRM &lt;b&gt;hook&lt;/b&gt; &amp; co" in page and "<b>hook</b>" not in page
    assert "&lt;script&gt;alert(" in page and '<script>alert("x")' not in page
    assert rule.name not in page.split('id="auto-disabled"')[1]  # active rules are not listed


def test_an_idle_engine_says_so(staff_client):
    page = staff_client.get("/admin/engine/").content.decode()
    assert "nothing is waiting" in page
    assert "No run finished in the last hour" in page
    assert "No worker has registered" in page
    assert "no worker is running" in page


def test_rules_turned_off_more_than_a_day_ago_are_not_listed(staff_client, make_rule):
    rule = make_rule(name="Old trouble")
    health.disable(rule=rule, reason="Turned off: the receiver answered that it is gone.")
    type(rule).objects.filter(pk=rule.pk).update(disabled_at=timezone.now() - dt.timedelta(days=2))
    assert "Old trouble" not in staff_client.get("/admin/engine/").content.decode()


def test_runs_per_minute_are_bucketed_by_status(staff_client, entity, make_rule, scripted):
    from automations import engine_state

    make_rule()
    now = timezone.now().replace(second=30)  # frozen mid-minute: no minute boundary inside the test
    with time_machine.travel(now, tick=False):
        for name in ("a", "b", "c"):
            services.record_create(entity=entity, data={"name": name})
        tasks.handle_events()
    AutomationLog.objects.filter(record_snapshot__data__name="b").update(status=RunStatus.ERROR)
    AutomationLog.objects.filter(record_snapshot__data__name="c").update(finished_at=now - dt.timedelta(minutes=5))
    minutes = engine_state.runs_per_minute(now)
    assert len(minutes) == 60 and minutes[-1]["minute"] == now.replace(second=0, microsecond=0)
    assert (minutes[-1]["success"], minutes[-1]["error"]) == (1, 1)
    assert minutes[-6]["success"] == 1
    assert sum(m["success"] + m["error"] + m["skipped"] for m in minutes) == 3


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3600, "1 h"), (3720, "1 h 2 min"), (90000, "1 d 1 h")],
)
def test_ages_read_like_a_person_says_them(seconds, text):
    assert age_text(seconds) == text
