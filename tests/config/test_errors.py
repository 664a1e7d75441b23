"""Domain errors and their one mapping to HTTP (``config.api``)."""

import pytest
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from config.errors import Conflict, DomainError, InvalidInput, NotAllowed, NotFound, unknown_key_message


class Raising(APIView):
    authentication_classes = []
    permission_classes = []
    error: Exception | None = None

    def get(self, request):
        raise self.error


def answer(error: Exception):
    response = Raising.as_view(error=error)(APIRequestFactory().get("/"))
    response.render()
    return response.status_code, response.data


@pytest.mark.parametrize(
    ("error", "status", "message", "errors"),
    [
        (
            InvalidInput(errors={"data": {"email": ["Enter a valid email address."]}}),
            400,
            "Validation failed",
            {"data.email": ["Enter a valid email address."]},
        ),
        (
            InvalidInput("The list is empty."),
            400,
            "Validation failed: The list is empty.",
            {"non_field_errors": ["The list is empty."]},
        ),
        (NotFound("Record not found."), 404, "Record not found.", {}),
        (Conflict("Already a member."), 409, "Already a member.", {}),
        (
            Conflict("3 records do not fit.", errors={"fields": ["3 records do not fit."]}),
            409,
            "3 records do not fit.",
            {"fields": ["3 records do not fit."]},
        ),
        (NotAllowed("Only owners manage owners."), 403, "Only owners manage owners.", {}),
        (
            DomainError("Something else."),
            400,
            "Validation failed: Something else.",
            {"non_field_errors": ["Something else."]},
        ),
    ],
)
def test_each_kind_of_domain_error_has_its_status_and_the_envelope(error, status, message, errors):
    code, body = answer(error)
    assert code == status
    assert body == {"success": False, "message": message, "errors": errors}


def test_errors_are_kept_flat_and_readable():
    error = InvalidInput(errors={"action_config": {"url": ["Enter a URL."]}, "non_field_errors": ["Bad."]})
    assert error.errors == {"action_config.url": ["Enter a URL."], "non_field_errors": ["Bad."]}
    assert error.messages() == ["action_config.url: Enter a URL.", "Bad."]
    assert error.messages(keyed=False) == ["Enter a URL.", "Bad."]
    assert str(error) == "Validation failed: action_config.url: Enter a URL.; Bad."
    assert error.prefixed("x") == {"x.action_config.url": ["Enter a URL."], "x.non_field_errors": ["Bad."]}
    assert NotFound().messages() == ["Not found."]


def test_unknown_key_message_suggests_the_closest_key():
    assert (
        unknown_key_message("is_activ", ["name", "is_active"]) == "Unknown field 'is_activ'. Did you mean 'is_active'?"
    )
    assert unknown_key_message("zzz", ["b", "a"], "option") == "Unknown option 'zzz'. Known: a, b."
