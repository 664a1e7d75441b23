"""The worker keeps each entity's active rules between batches (``automations.rule_cache``) and checks them
against the rows' versions on every use: a rule edited, turned off or on, added or deleted, or its entity
changed, is matched as the database holds it from the next event on, and nothing else asks the database
for the rules again."""

from __future__ import annotations

import pytest
from django.db import connection

from automations import matching, rule_cache, services
from records import services as records
from workspaces import services as workspaces


@pytest.fixture(autouse=True)
def _postgresql_only(scripted):
    if connection.vendor != "postgresql":
        pytest.skip("the rules' row versions come with the take statement on PostgreSQL only")
    rule_cache.cache.clear()


def created(entity, name="Ada", **data):
    """Write a record, match its event; the names of the rules that got a run."""
    records.record_create(entity=entity, data={"name": name, **data})
    matched = matching.take_and_match()
    assert matched.events == 1
    return sorted(log.automation.name for log in matched.logs)


def test_unchanged_rules_are_not_asked_for_again(entity, make_rule):
    make_rule(name="A")
    assert created(entity) == ["A"]
    loads = rule_cache.cache.loads
    assert created(entity, "Grace") == ["A"]
    assert created(entity, "Linus") == ["A"]
    assert rule_cache.cache.loads == loads


def test_an_edit_applies_from_the_next_event(entity, make_rule):
    rule = make_rule(name="A")
    assert created(entity) == ["A"]
    services.rule_update(
        rule=rule, conditions={"match": "all", "rules": [{"field": "name", "op": "eq", "value": "Grace"}]}
    )
    assert created(entity, "Ada") == []
    assert created(entity, "Grace") == ["A"]


def test_a_rule_turned_off_added_or_deleted_applies_from_the_next_event(entity, make_rule):
    first = make_rule(name="A")
    assert created(entity) == ["A"]
    second = make_rule(name="B")
    assert created(entity) == ["A", "B"]
    services.rule_set_active(rule=first, active=False)
    assert created(entity) == ["B"]
    services.rule_set_active(rule=first, active=True)
    assert created(entity) == ["A", "B"]
    second.delete()
    assert created(entity) == ["A"]


def test_a_change_to_the_entity_reloads_its_rules(entity, make_rule):
    make_rule(name="A", conditions={"match": "all", "rules": [{"field": "score", "op": "gt", "value": 5}]})
    workspaces.entity_update(entity=entity, fields=[*entity.fields, {"name": "score", "type": "number"}])
    assert created(entity, score=7) == ["A"]
    loads = rule_cache.cache.loads
    workspaces.entity_update(entity=entity, description="changed")
    assert created(entity, score=7) == ["A"]
    assert rule_cache.cache.loads == loads + 1


def test_edits_within_one_transaction_are_told_apart(entity, make_rule):
    """The tests' own case (everything in one transaction, so one transaction id for every row version)."""
    rule = make_rule(name="A")
    assert created(entity) == ["A"]
    rule.conditions = {"match": "all", "rules": [{"field": "name", "op": "eq", "value": "Grace"}]}
    rule.save()
    assert created(entity, "Ada") == []


def test_each_entity_gets_its_own_rules(entity, make_rule, other_workspace):
    matching.take_and_match()  # the other workspace's record
    make_rule(name="A")
    make_rule(name="B", workspace=other_workspace["workspace"], entity=other_workspace["entity"])
    assert created(entity) == ["A"]
    assert created(other_workspace["entity"]) == ["B"]
    assert created(entity) == ["A"]
