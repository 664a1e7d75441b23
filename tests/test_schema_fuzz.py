"""A bounded schemathesis run against ``/api/v1/schema/``: generated requests to every operation, as the
owner of a seeded workspace, must never answer 5xx, nor anything the schema does not document (status,
content type, body).

In-process (WSGI), a fixed Hypothesis seed and a small ``max_examples`` keep it reproducible and well
under two minutes. Path ids are replaced by real ids of the seeded workspace, so requests get past the
404 of a random id and reach the views."""

from __future__ import annotations

import re

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import MembershipFactory, seed_workspace
from workspaces.models import Role

MAX_EXAMPLES = 15
SEED = 20240601
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SCHEMA = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}

# Which seeded object a path's "{id}" names, by the collection before it.
ID_KIND = {
    "workspaces": "workspace",
    "members": "member",
    "entities": "entity",
    "records": "record",
    "tasks": "task",
    "automations": "rule",
}


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Like Django's test client: the WSGI handler must not close the connection holding the test's
    transaction between requests (it does with PostgreSQL and CONN_MAX_AGE)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db):
    owner_membership = MembershipFactory(role=Role.OWNER)
    return {"token": owner_membership.user.auth_token.key, **seed_workspace(owner_membership.workspace)}


def real_path_parameters(path: str, seeded: dict) -> dict[str, str]:
    params = {"workspace_pk": seeded["workspace"].pk, "entity_pk": seeded["entity"].pk, "log_id": seeded["log"].pk}
    match = re.search(r"/(\w+)/\{id\}/", path)
    if match:
        params["id"] = seeded[ID_KIND[match.group(1)]].pk
    names = set(re.findall(r"\{(\w+)\}", path))
    return {name: str(value) for name, value in params.items() if name in names}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_conforms_to_its_schema(seeded, label):
    operation = OPERATIONS[label]
    headers = {"Authorization": f"Token {seeded['token']}"}
    path_parameters = real_path_parameters(operation.path, seeded)

    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def check(case):
        if path_parameters:
            case.path_parameters = {**(case.path_parameters or {}), **path_parameters}
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
