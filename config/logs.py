"""Logging: readable text by default, one JSON object per line with ``LOG_FORMAT=json``.

Every log line goes through the standard library's logging; structlog's ``ProcessorFormatter`` renders it
and merges the context bound for the current request or run (``request_id``, ``workspace_id``,
``rule_id``, ``run_id``, …: see ``config/middleware.py`` and ``automations/telemetry.py``). Plain
``logging`` calls (the engine's, Django's) and structlog calls (django-structlog's request events) come
out the same way.
"""

from __future__ import annotations

import logging

import structlog

FORMATS = ("text", "json")

# What every record gets before it is rendered, whether it came from structlog or from plain logging.
_shared = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class DropEngineTextReport(logging.Filter):
    """With JSON logs the engine's one-line run report (``executor._report``) is replaced by the structured
    ``automation_run`` record (``automations.telemetry``), which carries the same facts as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.module == "executor" and record.funcName == "_report")


def configure_structlog() -> None:
    """structlog hands its events to the standard library (so one set of handlers renders everything)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def logging_config(*, log_format: str, level: str, automations_level: str) -> dict:
    """The ``LOGGING`` dict for ``log_format`` (text or json). Requests are logged one line each in JSON;
    in text only when they fail (4xx, 5xx), since ``runserver`` and proxies already print an access line."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    json_lines = log_format == "json"
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    handler = {"class": "logging.StreamHandler", "formatter": log_format}
    if json_lines:
        handler["filters"] = ["drop_engine_text_report"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            log_format: {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": [*_shared, structlog.stdlib.ExtraAdder()],
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    # JSON: the traceback as one string field; the console renderer formats it itself.
                    *([structlog.processors.format_exc_info] if json_lines else []),
                    renderer,
                ],
            }
        },
        "filters": {"drop_engine_text_report": {"()": DropEngineTextReport}},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            # Django's own loggers (errors of django.request, runserver's lines) through the same handler.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django_structlog": {
                "handlers": ["console"],
                "level": level if json_lines else "WARNING",
                "propagate": False,
            },
            "automations": {"handlers": ["console"], "level": automations_level, "propagate": False},
        },
    }


def gunicorn_logconfig(log_format: str) -> dict:
    """gunicorn's own logger (worker boots, timeouts) in the same format as the application's lines."""
    log_format = log_format.strip().lower()
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    config = logging_config(log_format=log_format, level="INFO", automations_level="INFO")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": config["formatters"],
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }
