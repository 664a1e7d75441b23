"""``python manage.py seed_demo [--base-url URL]``: a demo owner, workspace, "Leads" entity, records and
one automation rule per action type (``automations.demo``).

Safe to re-run: existing objects are reused. The owner ``demo`` is staff and superuser (the admin works
with the same login); its password is generated once into ``.demo-password`` at the repository root
(git-ignored) and reused, unless ``DEMO_PASSWORD`` is set.

It lives in the automations app (not in workspaces) because it seeds all three apps: ``workspaces`` and
``records`` never import ``automations``, only the reverse."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from automations.exceptions import RuleInvalid
from records import services as record_services
from records.models import Record
from workspaces import services
from workspaces.models import Entity, Membership, Role, Workspace

from ...demo import DEMO_USERNAME, INBOX_PATH, demo_password, seed_demo_automations

DEMO_EMAIL = "demo@example.com"
WORKSPACE_NAME = "Demo workspace"
LEAD_STATUSES = ["New", "Contacted", "Qualified", "Closed Won", "Closed Lost"]
LEAD_FIELDS = [
    {"name": "name", "type": "text", "required": True},
    {"name": "email", "type": "email", "required": False},
    {"name": "company", "type": "text", "required": False},
    {"name": "status", "type": "select", "required": False, "options": LEAD_STATUSES},
    {"name": "amount", "type": "number", "required": False},
]
SAMPLE_LEADS = [
    {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines",
        "status": "New",
        "amount": 1200,
    },
    {
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "company": "COBOL Inc",
        "status": "Contacted",
        "amount": 5400,
    },
    {"name": "Alan Turing", "email": "alan@example.com", "company": "Bletchley", "status": "Qualified", "amount": 8000},
    {"name": "Katherine Johnson", "email": "katherine@example.com", "company": "NASA", "status": "Closed Won"},
    {
        "name": "Linus Torvalds",
        "email": "linus@example.com",
        "company": "Kernel Co",
        "status": "Closed Lost",
        "amount": 300,
    },
]


class Command(BaseCommand):
    help = (
        "Create (or reuse) the demo owner, workspace, Leads entity, sample records and rules (the webhook rule "
        "follows --base-url); print the URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.DEMO_BASE_URL,
            help="Where the server listens (default: DEMO_BASE_URL, which `make run` records in .env).",
        )

    def handle(self, *args, base_url: str, **options):
        base_url = base_url.rstrip("/")
        password = demo_password()
        with transaction.atomic():
            user = self.ensure_user(password)
            workspace = self.ensure_workspace(user)
            entity = self.ensure_entity(workspace)
            created = self.ensure_records(entity, user)

        try:
            rules = seed_demo_automations(workspace=workspace, entity=entity, user=user, base_url=base_url)
        except RuleInvalid as exc:
            # In practice the webhook rule's URL on this machine, refused by the SSRF filter.
            raise CommandError(
                f"A demo rule was refused: {'; '.join(exc.messages())}. The demo webhook rule posts to this "
                f"server's inbox ({base_url}{INBOX_PATH}): allow that host with AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS "
                "(make run sets 127.0.0.1 and records it in .env), then run seed_demo again."
            ) from exc

        token = Token.objects.get(user=user).key
        out = self.stdout
        out.write(self.style.SUCCESS(f"Demo data ready ({created} new records, {len(rules['created'])} new rules)."))
        out.write(f"  Home:      {base_url}/")
        out.write(f"  Admin:     {base_url}/admin/")
        out.write(f"  API:       {base_url}/api/v1/")
        out.write(f"  API docs:  {base_url}/api/v1/docs/  (ReDoc: {base_url}/api/v1/redoc/)")
        out.write(f"  Login:     {DEMO_USERNAME} / {password}")
        out.write(f"  API token: {token}  (Authorization: Token <key>)")
        out.write(f"  Workspace: {workspace.id}   Leads entity: {entity.id}")
        for name in rules["moved"]:
            out.write(f'  Rule "{name}" now posts to {base_url}{INBOX_PATH}')

    def ensure_user(self, password: str):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"email": DEMO_EMAIL, "is_staff": True, "is_superuser": True}
        )
        changed = []
        if not (user.is_staff and user.is_superuser and user.is_active):
            user.is_staff = user.is_superuser = user.is_active = True
            changed += ["is_staff", "is_superuser", "is_active"]
        if created or not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
        Token.objects.get_or_create(user=user)
        return user

    def ensure_workspace(self, user) -> Workspace:
        membership = (
            Membership.objects.select_related("workspace")
            .filter(user=user, role=Role.OWNER, workspace__name=WORKSPACE_NAME)
            .order_by("created_at")
            .first()
        )
        if membership:
            return membership.workspace
        return services.workspace_create(
            user=user, name=WORKSPACE_NAME, description="Sample data created by manage.py seed_demo."
        )

    def ensure_entity(self, workspace: Workspace) -> Entity:
        entity = Entity.objects.filter(workspace=workspace, slug="leads").first()
        if entity:
            return entity
        return services.entity_create(
            workspace=workspace, name="Leads", fields=LEAD_FIELDS, status_field="status", description="Sales leads"
        )

    def ensure_records(self, entity: Entity, user) -> int:
        if Record.objects.filter(entity=entity).exists():
            return 0
        for data in SAMPLE_LEADS:
            record_services.record_create(entity=entity, data=data, actor=user)
        return len(SAMPLE_LEADS)
