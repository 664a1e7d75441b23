"""Model serializers build their fields once per class; every instance still gets fields of its own."""

from automations.api.serializers import AutomationRuleSerializer
from records.api.serializers import RecordSerializer
from workspaces.models import Membership, Role


def test_each_instance_gets_its_own_copy_of_the_fields_built_once():
    viewer = AutomationRuleSerializer(context={"membership": Membership(role=Role.VIEWER)})
    owner = AutomationRuleSerializer(context={"membership": Membership(role=Role.OWNER)})
    assert "signing_secret" not in viewer.fields  # the viewer's copy lost it ...
    assert "signing_secret" in owner.fields  # ... not the owner's, nor the class's
    assert "signing_secret" in AutomationRuleSerializer._fields_built_once
    new_rule = AutomationRuleSerializer(data={"name": "x"})
    assert new_rule.fields["action_type"].required is True  # set on a new rule's copy only
    assert AutomationRuleSerializer(instance=None).fields["action_type"].required is False
    first, second = RecordSerializer(), RecordSerializer()
    assert first.fields["data"] is not second.fields["data"]
    assert first.fields["data"].parent is first and second.fields["data"].parent is second
