import pytest

from automations.exceptions import ConfigInvalid
from automations.trigger_types import Event, trigger_names_for, trigger_types
from tests.factories import EntityFactory


def updated(old, new):
    return Event("updated", new, old)


@pytest.fixture
def entity(db):
    return EntityFactory()


STATUS_CASES = [
    # (config, old, new, expected)
    ({"to_status": "Contacted"}, {"status": "New"}, {"status": "Contacted"}, True),
    ({"to_status": "Contacted"}, {"status": "Contacted"}, {"status": "Contacted"}, False),  # no real change
    ({"to_status": "Contacted"}, {"status": "New"}, {"status": "Qualified"}, False),  # other target
    ({"to_status": "Contacted", "from_status": "New"}, {"status": "New"}, {"status": "Contacted"}, True),
    ({"to_status": "Contacted", "from_status": "Qualified"}, {"status": "New"}, {"status": "Contacted"}, False),
    ({"to_status": "Contacted"}, {}, {"status": "Contacted"}, True),  # from nothing
    ({"to_status": "Contacted", "from_status": None}, {"status": "New"}, {"status": "Contacted"}, True),
]


@pytest.mark.parametrize(("config", "old", "new", "expected"), STATUS_CASES)
def test_status_changed_follows_the_seed(entity, config, old, new, expected):
    trigger = trigger_types.get("status_changed")
    cleaned = trigger.validate_config(config, entity=entity)
    assert trigger.matches(updated(old, new), cleaned, entity=entity) is expected


def test_status_changed_uses_the_entitys_status_field(entity):
    entity.status_field = "stage"
    entity.fields = [*entity.fields, {"name": "stage", "type": "text", "required": False}]
    trigger = trigger_types.get("status_changed")
    config = trigger.validate_config({"to_status": "Won"}, entity=entity)
    assert trigger.matches(
        updated({"stage": "Open", "status": "New"}, {"stage": "Won", "status": "New"}), config, entity=entity
    )
    assert not trigger.matches(updated({"status": "New"}, {"status": "Won"}), config, entity=entity)


def test_status_changed_never_fires_on_create_or_delete(entity):
    trigger = trigger_types.get("status_changed")
    config = {"to_status": "New"}
    assert not trigger.matches(Event("created", {"status": "New"}, None), config, entity=entity)
    assert not trigger.matches(Event("deleted", {"status": "New"}, None), config, entity=entity)


@pytest.mark.parametrize(
    ("config", "error_key"),
    [
        ({}, "to_status"),
        ({"to_status": "Nope"}, "to_status"),
        ({"to_status": "New", "from_status": "Nope"}, "from_status"),
        ({"to_status": "New", "from_status": "New"}, "from_status"),
        ({"to_status": "New", "extra": 1}, "extra"),
    ],
)
def test_status_changed_config_errors(entity, config, error_key):
    with pytest.raises(ConfigInvalid) as info:
        trigger_types.get("status_changed").validate_config(config, entity=entity)
    assert error_key in info.value.errors


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"email": "a@x.io"}, {"email": "b@x.io"}, True),
        ({"email": "a@x.io"}, {"email": "a@x.io"}, False),
        ({}, {"email": "a@x.io"}, True),
        ({"email": "a@x.io"}, {}, True),
        ({"email": "a@x.io", "name": "A"}, {"email": "a@x.io", "name": "B"}, False),  # another field
    ],
)
def test_field_updated_needs_that_field_to_differ(entity, old, new, expected):
    trigger = trigger_types.get("field_updated")
    config = trigger.validate_config({"field_name": "email"}, entity=entity)
    assert trigger.matches(updated(old, new), config, entity=entity) is expected


def test_field_updated_rejects_unknown_field(entity):
    with pytest.raises(ConfigInvalid) as info:
        trigger_types.get("field_updated").validate_config({"field_name": "nope"}, entity=entity)
    assert "field_name" in info.value.errors


@pytest.mark.parametrize(
    ("name", "event_type", "expected"),
    [
        ("record_created", "created", True),
        ("record_created", "updated", False),
        ("record_updated", "updated", True),
        ("record_updated", "created", False),
        ("record_deleted", "deleted", True),
        ("record_deleted", "updated", False),
    ],
)
def test_lifecycle_triggers(entity, name, event_type, expected):
    trigger = trigger_types.get(name)
    assert trigger.validate_config({}, entity=entity) == {}
    assert (
        trigger.matches(Event(event_type, {"name": "x"}, {} if event_type == "updated" else None), {}, entity=entity)
        is expected
    )


def test_trigger_names_for_event_types():
    # date_reached follows every change to move its due times; conditions_met judges creates and updates
    assert set(trigger_names_for("updated")) == {
        "record_updated",
        "field_updated",
        "status_changed",
        "conditions_met",
        "date_reached",
    }
    assert set(trigger_names_for("created")) == {"record_created", "conditions_met", "date_reached"}
    assert set(trigger_names_for("deleted")) == {"record_deleted", "date_reached"}


@pytest.mark.parametrize("trigger", list(trigger_types), ids=lambda t: t.name)
def test_every_trigger_type_is_documented_and_rejects_non_objects(entity, trigger):
    assert trigger.__doc__ and trigger.label
    with pytest.raises(ConfigInvalid):
        trigger.validate_config(["not", "a", "dict"], entity=entity)


TEST_MATCH_CASES = {
    # trigger: (config, data that fires a test run, data that does not or None, note contains)
    "record_created": ({}, {"name": "x"}, None, ""),
    "record_updated": ({}, {"name": "x"}, None, ""),
    "record_deleted": ({}, {"name": "x"}, None, ""),
    "field_updated": ({"field_name": "name"}, {"name": "x"}, None, "assumes the field changed"),
    "status_changed": ({"to_status": "Qualified"}, {"status": "Qualified"}, {"status": "New"}, "current status"),
    "conditions_met": ({}, {"name": "x"}, None, "conditions alone"),
    "scheduled": ({"cron": "0 9 * * 1", "timezone": "Europe/Paris"}, {"name": "x"}, None, "each occurrence"),
    "date_reached": ({"field": "due", "offset_seconds": 0}, {"due": "2030-01-01"}, {"name": "x"}, "Due at 2030"),
}


def test_every_trigger_type_has_a_test_match_case():
    assert set(TEST_MATCH_CASES) == set(trigger_types.names())


@pytest.mark.parametrize("name", sorted(TEST_MATCH_CASES))
def test_test_match_judges_a_record_without_previous_data(entity, name):
    config, firing, quiet, note = TEST_MATCH_CASES[name]
    entity.fields = [*entity.fields, {"name": "due", "type": "date", "required": False, "options": []}]
    trigger = trigger_types.get(name)
    matches, text = trigger.test_match(firing, config, entity=entity)
    assert matches is True and note in text
    if quiet is not None:
        assert trigger.test_match(quiet, config, entity=entity)[0] is False
