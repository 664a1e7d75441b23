"""The page at / (the URL `make run` prints): what this is, and links to the admin, the API, its docs and
schema, the demo inbox when it is on, and the demo login hint when DEBUG is on."""

import re

import pytest
from django.contrib.auth import get_user_model

from automations.demo import DEMO_USERNAME

LINK = re.compile(r"""href\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.IGNORECASE)
ALWAYS = ["/admin/", "/api/v1/", "/api/v1/docs/", "/api/v1/redoc/", "/api/v1/schema/"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, settings):
    def get() -> str:
        response = client.get("/")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        return response.content.decode()

    return get


@pytest.fixture
def demo_owner(db):
    return get_user_model().objects.create_user(DEMO_USERNAME, password="Demo-Pass-123")


def test_names_the_product_and_links_admin_api_docs_and_schema(page, settings):
    settings.DEBUG, settings.DEMO_WEBHOOK_INBOX = False, False
    html = page()
    assert "<title>Workspace automations</title>" in html
    assert sorted(LINK.findall(html)) == sorted(ALWAYS)
    assert ABSOLUTE.findall(html) == []  # no CDN, nothing from another host
    assert "demo" not in html.lower()  # neither the inbox nor the login hint


def test_every_link_is_served(page, client, settings):
    settings.DEMO_WEBHOOK_INBOX = True
    for url in LINK.findall(page()):
        status = client.get(url).status_code
        assert status != 404 and status < 500, (url, status)


def test_demo_inbox_link_only_when_the_inbox_is_on(page, settings):
    settings.DEMO_WEBHOOK_INBOX = True
    assert "/demo/webhook-inbox/" in LINK.findall(page())
    settings.DEMO_WEBHOOK_INBOX = False
    assert "/demo/webhook-inbox/" not in page()


def test_login_hint_only_with_debug_and_never_the_password(page, settings, demo_owner):
    settings.DEMO_PASSWORD = ""
    settings.DEBUG = False
    assert ".demo-password" not in page()

    settings.DEBUG = True
    html = page()
    assert "<code>demo</code>" in html and "<code>.demo-password</code>" in html
    assert "Demo-Pass-123" not in html

    settings.DEMO_PASSWORD = "Env-Chosen-Password-1"
    html = page()
    assert "<code>DEMO_PASSWORD</code>" in html and "Env-Chosen-Password-1" not in html


def test_before_seeding_debug_says_how_to_create_the_demo(page, settings):
    settings.DEBUG = True
    html = page()
    assert "seed_demo" in html and ".demo-password" not in html
