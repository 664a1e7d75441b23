"""``python manage.py test_automation <automation_id> --record <record_id> [--dry-run] [--json]``.

Runs a rule's action against one record through ``services.rule_test_run`` (the same path as the API's
``test`` endpoint): a real run is logged with ``is_test``; ``--dry-run`` shows what would happen without
sending, writing or logging. Exit code 0 when the run (or preview) succeeded, 1 with a one-line reason
otherwise (2 for bad arguments). With ``--json`` the output is one JSON object whatever happens:
``{"ok": true, ...the outcome}``, or ``{"ok": false, "error": "...", ...}`` with the same exit code."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from automations import selectors, services
from automations.models import AutomationRule
from config.errors import DomainError
from records.models import Record
from records.selectors import record_by_id


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise CommandError(f"'{value}' is not a valid {what} id (expected a UUID).") from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


class Command(BaseCommand):
    help = "Run an automation's action against one record now (or --dry-run to preview it) and show the outcome."

    def add_arguments(self, parser):
        parser.add_argument("automation_id", help="The automation rule's id.")
        parser.add_argument("--record", required=True, dest="record_id", help="Id of a record of the rule's entity.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would happen without sending, writing or logging."
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the result as JSON.")

    def run_from_argv(self, argv):
        self._as_json = "--json" in argv  # argument errors are found before handle() knows the option
        super().run_from_argv(argv)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        usage_error = parser.error

        def error(message):
            if getattr(self, "_as_json", False):
                self._print_json({"ok": False, "error": message})
                sys.exit(2)
            usage_error(message)

        parser.error = error
        return parser

    def handle(self, *args, automation_id, record_id, dry_run=False, as_json=False, **options):
        try:
            rule, record, result = self._test(automation_id, record_id, dry_run)
        except CommandError as exc:
            if as_json:
                self._print_json({"ok": False, "error": str(exc)})
            raise
        except Exception as exc:
            if as_json:
                self._print_json({"ok": False, "error": _one_line(f"{type(exc).__name__}: {exc}")})
            raise
        failure = None
        if not result["success"]:
            verb = "would fail" if result["dry_run"] else "failed"
            failure = f"The action {verb}: {_one_line(result.get('error') or 'unknown error')}"
        if as_json:
            payload = {"automation_id": str(rule.pk), "record_id": str(record.pk), **result}
            self._print_json({"ok": failure is None, **payload})
        else:
            self._print_readable(rule, record, result)
        if failure:
            raise CommandError(failure)

    def _test(self, automation_id, record_id, dry_run) -> tuple[AutomationRule, Record, dict[str, Any]]:
        rule_pk, record_pk = _uuid(automation_id, "automation"), _uuid(record_id, "record")
        rule = selectors.rule_by_id(rule_pk)
        if rule is None:
            raise CommandError(f"No automation with id {rule_pk}.")
        record = record_by_id(record_pk)
        if record is None:
            raise CommandError(f"No record with id {record_pk}.")
        try:
            result = services.rule_test_run(rule=rule, record=record, dry_run=dry_run)
        except DomainError as exc:
            raise CommandError(_one_line(" ".join(exc.messages(keyed=False)))) from None
        return rule, record, result

    def _print_json(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))

    # ------------------------------------------------------------------ readable output

    def _print_readable(self, rule: AutomationRule, record: Record, result: dict[str, Any]) -> None:
        out = self.stdout.write
        state = "active" if rule.is_active else "inactive"
        out(self.style.MIGRATE_HEADING(f'Automation "{rule.name}" ({rule.pk}), {state}'))
        out(f"  when {rule.trigger_type} {json.dumps(rule.trigger_config or {})} on {rule.entity.name}")
        steps = rule.step_list
        for index, step in enumerate(steps):
            out(f"  {'then' if index == 0 else 'and then'} {step['type']} {json.dumps(step.get('config') or {})}")
        out(f"Record {record.pk}: {json.dumps(record.data, ensure_ascii=False, cls=DjangoJSONEncoder)}")
        note = f" ({result['trigger_note']})" if result.get("trigger_note") else ""
        out(f"Trigger:    {self._yes_no(result.get('trigger_matches'))}{note}")
        conditions = "no conditions" if not rule.conditions else self._yes_no(result.get("conditions_match"))
        out(f"Conditions: {conditions}")
        if result.get("next_occurrences") is not None:
            out(f"Next:       {', '.join(result['next_occurrences']) or 'never (no due time)'}")
        if result["dry_run"]:
            out(self.style.MIGRATE_HEADING("Dry run: nothing was sent, written or logged. The steps would:"))
            for step in result.get("steps") or []:
                out(
                    f"Step {step['index'] + 1}: {step['type']}"
                    + (f"  (would fail: {step['error']})" if step["error"] else "")
                )
                self._print_fields(step.get("preview") or {})
        else:
            out(self.style.MIGRATE_HEADING(f"Ran the rule (test run logged as {result.get('log_id')}):"))
            for step in result.get("steps") or []:
                error = f": {step['error']}" if step.get("error") else ""
                out(f"Step {step['index'] + 1}: {step['type']}, {step['status']}{error}")
                self._print_fields(step.get("result") or {})
            if result.get("status") == "pending":
                out("  (the run now waits on a delay; a worker resumes it when it is due)")
            if result.get("duration_ms") is not None:
                out(f"  duration: {result['duration_ms']} ms")
        if result["success"]:
            out(self.style.SUCCESS("OK"))
        else:
            out(self.style.ERROR(f"FAILED: {result.get('error')}"))

    @staticmethod
    def _yes_no(value) -> str:
        return {True: "matches", False: "does not match"}.get(value, "unknown")

    def _print_fields(self, fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key == "html":
                continue  # the text part says the same, readably
            if isinstance(value, dict | list):
                text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
                self.stdout.write(f"  {key}:")
                for line in text.splitlines():
                    self.stdout.write(f"    {line}")
            elif isinstance(value, str) and "\n" in value:
                self.stdout.write(f"  {key}:")
                for line in value.splitlines():
                    self.stdout.write(f"    {line}")
            else:
                self.stdout.write(f"  {key}: {value}")
