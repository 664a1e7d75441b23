"""Background tasks (Django's tasks API). The engine works the same on any configured backend."""

from django.conf import settings
from django.tasks import task

from . import executor


@task(queue_name=settings.AUTOMATIONS_QUEUE)
def process_events(event_ids: list[str]) -> int:
    """Match the events against active rules, log one run per matching rule, execute the runs."""
    return executor.process_event_ids(event_ids)


@task(queue_name=settings.AUTOMATIONS_QUEUE)
def run_automation(log_id: str) -> str | None:
    """Run (or retry) one logged run when it is due."""
    log = executor.run_log_id(log_id)
    return log.status if log is not None else None
