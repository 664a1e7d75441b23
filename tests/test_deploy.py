"""What deploy/ promises: `check --deploy` clean with the production variables, systemd units that
systemd accepts, and a Compose file whose commands are the ones the units, `make run` and the README use
(these machines cannot run Docker, so the file is parsed and compared, not started)."""

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ["automations-web.service", "automations-worker@.service", "automations.target", "automations-migrate.service"]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "automations.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://automations.example.com",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "EMAIL_PROVIDER": "smtp",
    "LOG_FORMAT": "json",
    "METRICS_TOKEN": secrets.token_urlsafe(32),
}


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_variables():
    done = check_deploy(**PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_development_defaults_are_what_check_deploy_warns_about():
    """The defaults keep `make run` and the tests on plain HTTP: check --deploy lists each one to change."""
    done = check_deploy()
    assert done.returncode != 0
    for code in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert code in done.stderr, code


def test_the_env_example_passes_check_deploy_too():
    """deploy/automations.env.example, with its placeholders filled, is a production configuration."""
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "automations.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    values["SECRET_KEY"] = secrets.token_urlsafe(64)
    values.pop("DATABASE_URL")  # no database needed for the checks
    values.pop("PROMETHEUS_MULTIPROC_DIR")
    done = check_deploy(**values)
    # HSTS for subdomains and preloading are the operator's call (the example leaves them off).
    problems = set(re.findall(r"\((\w+\.\w+)\)", done.stderr)) - {"security.W005", "security.W021"}
    assert not problems, done.stderr


def load_compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def argv_of(command) -> list[str]:
    """A Compose command as argv; a `sh -c` wrapper is looked into (the worker sets its metrics directory)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        script = argv[2].split("&&")[-1]
        argv = shlex.split(script.replace("exec ", "", 1))
    return argv


def manage_commands(argvs) -> set[tuple[str, ...]]:
    return {tuple(argv[argv.index("manage.py") + 1 :]) for argv in argvs if "manage.py" in argv}


def test_compose_runs_web_worker_postgresql_and_redis():
    services = load_compose()["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    web_env = services["web"]["environment"]
    assert web_env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in web_env["DATABASE_URL"]
    # The web's health check is the readiness endpoint.
    assert "/health/ready" in " ".join(services["web"]["healthcheck"]["test"])


def test_compose_commands_are_those_of_make_run_the_units_and_the_readme():
    services = load_compose()["services"]
    compose_argvs = [argv_of(s["command"]) for s in services.values() if "command" in s]
    compose_manage = manage_commands(compose_argvs)
    assert compose_manage == {("migrate", "--noinput"), ("automations_worker",)}

    # `make run` (bin/run-demo) runs the same manage.py commands.
    demo = (ROOT / "bin" / "run-demo").read_text()
    for command in compose_manage:
        assert re.search(rf"manage\.py {' '.join(command)}\b", demo), command
        assert command[0] in get_commands()

    # The systemd units run the same commands.
    unit_argvs = [
        shlex.split(line.split("=", 1)[1])
        for unit in UNITS
        for line in (DEPLOY / unit).read_text().splitlines()
        if line.startswith("ExecStart=")
    ]
    assert manage_commands(unit_argvs) == compose_manage

    # One gunicorn invocation everywhere: the same config file and WSGI module, which is Django's own.
    (compose_web,) = [argv for argv in compose_argvs if "gunicorn" in argv[0]]
    (unit_web,) = [argv for argv in unit_argvs if argv[0].endswith("/gunicorn")]
    assert compose_web[1:] == unit_web[1:] == ["--config", "config/gunicorn.py", "config.wsgi"]
    assert settings.WSGI_APPLICATION == "config.wsgi.application"
    readme = (ROOT / "README.md").read_text()
    assert "gunicorn --config config/gunicorn.py config.wsgi" in readme
    dockerfile_cmd = re.search(r"^CMD (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
    assert yaml.safe_load(dockerfile_cmd) == compose_web


def test_every_compose_build_and_env_file_exists():
    compose = load_compose()
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
    assert (DEPLOY / "automations.env.example").is_file()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """The units as shipped, with /srv/automations pointing at this checkout (whose .venv has gunicorn and
    python) and the env example as the environment file: systemd-analyze verify prints nothing."""
    for unit in UNITS:
        text = (DEPLOY / unit).read_text()
        text = text.replace("/etc/automations/automations.env", str(DEPLOY / "automations.env.example"))
        text = text.replace("/srv/automations", str(ROOT))
        name = "automations-worker@1.service" if unit == "automations-worker@.service" else unit
        (tmp_path / name).write_text(text)
    python = Path(sys.executable)
    venv_bin = ROOT / ".venv" / "bin"
    assert (venv_bin / "gunicorn").exists() and (venv_bin / "python").exists(), python
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stdout + done.stderr


def test_gunicorn_config_loads_in_both_log_formats():
    for log_format in ("text", "json"):
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.py", "--check-config", "config.wsgi"],
            cwd=ROOT,
            env={**os.environ, "LOG_FORMAT": log_format, "DJANGO_SETTINGS_MODULE": "config.settings"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
