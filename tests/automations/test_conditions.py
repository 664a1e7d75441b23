import pytest

from automations.conditions import OPERATORS, evaluate, validate_conditions
from automations.exceptions import ConfigInvalid
from tests.factories import EntityFactory


@pytest.fixture
def entity(db):
    entity = EntityFactory()
    entity.fields = [
        *entity.fields,
        {"name": "closes_on", "type": "date", "required": False},
        {"name": "seen_at", "type": "datetime", "required": False},
        {"name": "tags", "type": "multi_select", "required": False, "options": ["vip", "cold", "eu"]},
        {"name": "active", "type": "boolean", "required": False},
    ]
    return entity


def check(entity, rule, data, old=None):
    conditions = validate_conditions({"match": "all", "rules": [rule]}, entity=entity)
    return evaluate(conditions, data, old, entity=entity)


LEAD = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "status": "Qualified",
    "amount": 1500,
    "closes_on": "2025-03-01",
    "seen_at": "2025-01-15T10:00:00+00:00",
    "tags": ["vip", "eu"],
    "active": True,
    "company": "",
}

CASES = [
    ({"field": "status", "op": "eq", "value": "Qualified"}, True),
    ({"field": "status", "op": "eq", "value": "New"}, False),
    ({"field": "status", "op": "neq", "value": "New"}, True),
    ({"field": "amount", "op": "eq", "value": "1500"}, True),  # numbers compare as numbers
    ({"field": "amount", "op": "gt", "value": 1000}, True),
    ({"field": "amount", "op": "gt", "value": 1500}, False),
    ({"field": "amount", "op": "gte", "value": 1500}, True),
    ({"field": "amount", "op": "lt", "value": 200}, False),  # not string order ("1500" < "200")
    ({"field": "amount", "op": "lte", "value": 1500.0}, True),
    ({"field": "closes_on", "op": "gt", "value": "2025-02-28"}, True),
    ({"field": "closes_on", "op": "lt", "value": "2025-02-28"}, False),
    ({"field": "seen_at", "op": "gte", "value": "2025-01-15T11:00:00+01:00"}, True),  # same instant
    ({"field": "seen_at", "op": "gt", "value": "2025-01-15T10:00:01Z"}, False),
    ({"field": "name", "op": "contains", "value": "LOVE"}, True),
    ({"field": "name", "op": "not_contains", "value": "babbage"}, True),
    ({"field": "name", "op": "starts_with", "value": "ada"}, True),
    ({"field": "name", "op": "ends_with", "value": "lace"}, True),
    ({"field": "name", "op": "ends_with", "value": "ada"}, False),
    ({"field": "status", "op": "in", "value": ["New", "Qualified"]}, True),
    ({"field": "status", "op": "not_in", "value": ["New", "Qualified"]}, False),
    ({"field": "amount", "op": "in", "value": [1500, 2]}, True),
    ({"field": "tags", "op": "contains", "value": "vip"}, True),
    ({"field": "tags", "op": "contains", "value": "cold"}, False),
    ({"field": "tags", "op": "in", "value": ["cold", "eu"]}, True),
    ({"field": "company", "op": "is_empty"}, True),
    ({"field": "email", "op": "is_empty"}, False),
    ({"field": "email", "op": "is_not_empty"}, True),
    ({"field": "active", "op": "eq", "value": True}, True),
    ({"field": "active", "op": "eq", "value": "false"}, False),
]


@pytest.mark.parametrize(
    ("rule", "expected"), CASES, ids=[f"{c[0]['field']}-{c[0]['op']}-{i}" for i, c in enumerate(CASES)]
)
def test_operator(entity, rule, expected):
    assert check(entity, rule, LEAD) is expected


def test_every_operator_is_covered():
    assert {rule["op"] for rule, _ in CASES} | {"changed"} == set(OPERATORS)


def test_changed_compares_with_previous_data(entity):
    rule = {"field": "amount", "op": "changed"}
    assert check(entity, rule, LEAD, {**LEAD, "amount": 10}) is True
    assert check(entity, rule, LEAD, dict(LEAD)) is False
    assert check(entity, rule, LEAD, None) is False  # a create has no previous value


def test_missing_values_do_not_match_comparisons(entity):
    assert check(entity, {"field": "amount", "op": "gt", "value": 1}, {"name": "x"}) is False
    assert check(entity, {"field": "amount", "op": "is_empty"}, {"name": "x"}) is True
    assert check(entity, {"field": "name", "op": "starts_with", "value": "x"}, {}) is False


def test_nested_groups_all_any(entity):
    conditions = validate_conditions(
        {
            "match": "all",
            "rules": [
                {"field": "amount", "op": "gte", "value": 1000},
                {
                    "match": "any",
                    "rules": [
                        {"field": "status", "op": "eq", "value": "New"},
                        {"field": "tags", "op": "contains", "value": "vip"},
                    ],
                },
            ],
        },
        entity=entity,
    )
    assert evaluate(conditions, LEAD, None, entity=entity) is True
    assert evaluate(conditions, {**LEAD, "tags": []}, None, entity=entity) is False
    assert evaluate(conditions, {**LEAD, "amount": 10}, None, entity=entity) is False


def test_empty_conditions_always_match(entity):
    assert validate_conditions({}, entity=entity) == {}
    assert evaluate({}, {}, None, entity=entity) is True
    assert evaluate(None, {}, None, entity=entity) is True


@pytest.mark.parametrize(
    ("conditions", "error_key"),
    [
        ({"match": "most", "rules": []}, "match"),
        ({"match": "all", "rules": "x"}, "rules"),
        ({"match": "all", "rules": [{"field": "nope", "op": "eq", "value": 1}]}, "rules.0.field"),
        ({"match": "all", "rules": [{"field": "name", "op": "like", "value": 1}]}, "rules.0.op"),
        ({"match": "all", "rules": [{"field": "amount", "op": "gt", "value": "lots"}]}, "rules.0.value"),
        ({"match": "all", "rules": [{"field": "status", "op": "eq", "value": "Nope"}]}, "rules.0.value"),
        ({"match": "all", "rules": [{"field": "status", "op": "in", "value": "New"}]}, "rules.0.value"),
        ({"match": "all", "rules": [{"field": "status", "op": "eq"}]}, "rules.0.value"),
        ({"match": "all", "rules": [{"field": "status", "op": "is_empty", "value": "x"}]}, "rules.0.value"),
        ({"match": "all", "rules": [{"field": "active", "op": "gt", "value": True}]}, "rules.0.op"),
        (
            {"match": "any", "rules": [{"match": "all", "rules": [{"field": "x", "op": "eq", "value": 1}]}]},
            "rules.0.rules.0.field",
        ),
        ("nope", "non_field_errors"),
    ],
)
def test_validation_errors_name_the_condition(entity, conditions, error_key):
    with pytest.raises(ConfigInvalid) as info:
        validate_conditions(conditions, entity=entity)
    assert error_key in info.value.errors, info.value.errors


def test_nesting_depth_is_limited(entity):
    group = {"match": "all", "rules": [{"field": "name", "op": "is_empty"}]}
    for _ in range(6):
        group = {"match": "all", "rules": [group]}
    with pytest.raises(ConfigInvalid):
        validate_conditions(group, entity=entity)


def test_ne_is_accepted_for_neq_and_stored_as_neq(entity):
    conditions = validate_conditions(
        {"match": "all", "rules": [{"field": "status", "op": "ne", "value": "New"}]}, entity=entity
    )
    assert conditions == {"match": "all", "rules": [{"field": "status", "op": "neq", "value": "New"}]}
    assert evaluate(conditions, LEAD, None, entity=entity) is True
    assert "ne" not in OPERATORS  # documented once, as neq


def test_an_unknown_operator_lists_the_documented_ones(entity):
    with pytest.raises(ConfigInvalid) as info:
        validate_conditions({"match": "all", "rules": [{"field": "status", "op": "not", "value": "x"}]}, entity=entity)
    assert "Choose one of: eq, neq, gt" in info.value.errors["rules.0.op"][0]
