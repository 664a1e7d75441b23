import factory
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from automations import services as automation_services
from automations.models import AutomationLog, RunStatus
from records.models import Record, Task
from workspaces.models import Entity, Membership, Role, Workspace

User = get_user_model()

LEAD_FIELDS = [
    {"name": "name", "type": "text", "required": True},
    {"name": "email", "type": "email", "required": False},
    {"name": "company", "type": "text", "required": False},
    {
        "name": "status",
        "type": "select",
        "required": False,
        "options": ["New", "Contacted", "Qualified", "Closed Won", "Closed Lost"],
    },
    {"name": "amount", "type": "number", "required": False},
]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pass-Word-123")

    @factory.post_generation
    def token(obj, create, extracted, **kwargs):
        if create:
            obj.save()
            Token.objects.get_or_create(user=obj)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class EntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entity

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Leads {n}")
    slug = factory.Sequence(lambda n: f"leads-{n}")
    fields = factory.LazyFunction(lambda: [dict(f) for f in LEAD_FIELDS])
    status_field = "status"


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record

    entity = factory.SubFactory(EntityFactory)
    workspace = factory.LazyAttribute(lambda o: o.entity.workspace)
    data = factory.LazyFunction(lambda: {"name": "Ada Lovelace", "email": "ada@example.com", "status": "New"})


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    workspace = factory.SubFactory(WorkspaceFactory)
    title = factory.Sequence(lambda n: f"Task {n}")


class AutomationRuleFactory(factory.django.DjangoModelFactory):
    """A rule on a Leads-like entity; pass ``action_type``/``action_config`` for the action under test."""

    class Meta:
        model = "automations.AutomationRule"

    entity = factory.SubFactory(EntityFactory)
    workspace = factory.LazyAttribute(lambda o: o.entity.workspace)
    name = factory.Sequence(lambda n: f"Rule {n}")
    trigger_type = "record_created"
    trigger_config = factory.LazyFunction(dict)
    action_type = "create_task"
    action_config = factory.LazyFunction(lambda: {"title": "Follow up with {{name}}"})


def seed_workspace(workspace, entity=None) -> dict:
    """One object of each kind in ``workspace`` (and a member to act on); ``entity``: the one to use."""
    entity = entity or EntityFactory(workspace=workspace)
    record = RecordFactory(entity=entity)
    rule = automation_services.rule_create(
        workspace=workspace,
        entity=entity,
        name="Rule",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "Call {{name}}"},
    )
    log = AutomationLog.objects.create(
        automation=rule,
        workspace_id=workspace.pk,
        entity_id=entity.pk,
        record_id=record.pk,
        trigger_type=rule.trigger_type,
        action_type=rule.action_type,
        status=RunStatus.ERROR,
    )
    return {
        "workspace": workspace,
        "entity": entity,
        "record": record,
        "rule": rule,
        "log": log,
        "task": TaskFactory(workspace=workspace, record=record),
        "member": MembershipFactory(workspace=workspace, role=Role.MEMBER),
    }
