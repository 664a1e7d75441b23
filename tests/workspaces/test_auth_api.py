"""Accounts and auth: register (toggle), token, me; Token and Bearer headers; session login."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

User = get_user_model()


def test_register_returns_user_and_a_working_token(api, db):
    payload = {"username": "ada", "email": "ada@example.com", "password": "analytical-Engine-1843"}
    response = api.post("/api/v1/auth/register/", payload, format="json")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["user"]["username"] == "ada" and "password" not in data["user"]
    assert Token.objects.get(user__username="ada").key == data["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {data['token']}")
    assert api.get("/api/v1/auth/me/").json()["data"]["user"]["email"] == "ada@example.com"


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "a@example.com", "password": "analytical-Engine-1843"}, "username"),
        ({"username": "bad name!", "email": "a@example.com", "password": "analytical-Engine-1843"}, "username"),
        ({"username": "taken", "email": "new@example.com", "password": "analytical-Engine-1843"}, "username"),
        ({"username": "ada", "email": "TAKEN@example.com", "password": "analytical-Engine-1843"}, "email"),
        ({"username": "ada", "email": "not-an-email", "password": "analytical-Engine-1843"}, "email"),
        ({"username": "ada", "email": "a@example.com", "password": "123"}, "password"),
        ({"username": "ada", "email": "a@example.com", "password": "password"}, "password"),
    ],
)
def test_register_validation(api, db, payload, field):
    User.objects.create_user("taken", "taken@example.com", "x-Very-long-pass-1")
    response = api.post("/api/v1/auth/register/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not User.objects.filter(username="ada").exists()


def test_register_is_off_when_signup_is_disabled(api, db, settings):
    settings.SIGNUP_ENABLED = False
    payload = {"username": "ada", "email": "ada@example.com", "password": "analytical-Engine-1843"}
    response = api.post("/api/v1/auth/register/", payload, format="json")
    assert response.status_code == 403
    assert response.json() == {"success": False, "message": "Sign-up is disabled on this server.", "errors": {}}
    assert not User.objects.filter(username="ada").exists()


def test_token_endpoint(api, user):
    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": "pass-Word-123"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["token"] == user.auth_token.key
    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": "wrong"}, format="json")
    assert response.status_code == 401
    assert response.json()["success"] is False
    response = api.post("/api/v1/auth/token/", {"username": user.username}, format="json")
    assert response.status_code == 400 and "password" in response.json()["errors"]


def test_inactive_user_gets_no_token(api, user):
    user.is_active = False
    user.save()
    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": "pass-Word-123"}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_token_and_bearer_headers(api, user, scheme):
    api.credentials(HTTP_AUTHORIZATION=f"{scheme} {user.auth_token.key}")
    response = api.get("/api/v1/auth/me/")
    assert response.status_code == 200
    assert response.json()["data"]["user"]["id"] == user.id


@pytest.mark.parametrize(
    "header",
    ["Token", "Bearer a b", "Token 0000000000000000000000000000000000000000", "Token abc\x00def", "Token " + "a" * 500],
)
def test_bad_credentials_are_401_in_the_envelope(api, db, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_anonymous_is_401(api, db):
    response = api.get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["message"]


def test_session_login_for_the_browsable_api(user):
    client = APIClient(enforce_csrf_checks=True)
    page = client.get("/api-auth/login/")
    assert page.status_code == 200
    response = client.post(
        "/api-auth/login/",
        {
            "username": user.username,
            "password": "pass-Word-123",
            "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302
    assert client.get("/api/v1/auth/me/").json()["data"]["user"]["id"] == user.id
    html = client.get("/api/v1/workspaces/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and b"Workspace" in html.content
    # Session writes need the CSRF token.
    assert client.post("/api/v1/workspaces/", {"name": "X"}, format="json").status_code == 403
    response = client.post(
        "/api/v1/workspaces/", {"name": "X"}, format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )
    assert response.status_code == 201


def test_api_root_lists_entry_points(api, db):
    response = api.get("/api/v1/")
    assert response.status_code == 200
    assert response.json()["data"]["workspaces"].endswith("/api/v1/workspaces/")
