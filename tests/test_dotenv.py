"""config/settings.py reads the checkout's .env (written by `make run`): real environment variables win,
DOTENV_FILE names another file, and nothing is read under pytest.

Each case runs the settings in a fresh process (loading .env changes that process's environment)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBED = ("DEBUG", "DEMO_WEBHOOK_INBOX", "AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS", "DEMO_BASE_URL")
PROBE = (
    "import json, config.settings as s; "
    "print(json.dumps([s.DEBUG, s.DEMO_WEBHOOK_INBOX, s.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS, s.DEMO_BASE_URL]))"
)
DEMO_ENV = (
    "# written by make run\n"
    "DEBUG='true'\n"
    "DEMO_WEBHOOK_INBOX='true'\n"
    "AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS='127.0.0.1'\n"
    "DEMO_BASE_URL='http://127.0.0.1:9000'\n"
)
DEFAULTS = [False, False, [], "http://127.0.0.1:8000"]
FROM_FILE = [True, True, ["127.0.0.1"], "http://127.0.0.1:9000"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without pytest's marker and without the probed variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in {*PROBED, "PYTEST_VERSION", "DOTENV_FILE"}}
    return {**env, **extra}


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of config/ in a temporary project root, with the demo's .env beside it."""
    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / ".env").write_text(DEMO_ENV)
    return tmp_path


def settings_in(root: Path, env: dict[str, str]) -> list:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_checkouts_env_file_is_read(checkout):
    assert settings_in(checkout, clean_env()) == FROM_FILE


def test_real_environment_variables_win_over_the_file(checkout):
    env = clean_env(DEBUG="false", AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS="10.0.0.0/8")
    assert settings_in(checkout, env) == [False, True, ["10.0.0.0/8"], "http://127.0.0.1:9000"]


def test_dotenv_file_names_another_file_or_none(checkout, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "demo.env"
    other.write_text("DEMO_BASE_URL=http://127.0.0.1:8150\n")
    assert settings_in(checkout, clean_env(DOTENV_FILE=str(other))) == [*DEFAULTS[:3], "http://127.0.0.1:8150"]
    assert settings_in(checkout, clean_env(DOTENV_FILE="")) == DEFAULTS


def test_tests_never_read_a_developers_env_file(checkout):
    # pytest exports PYTEST_VERSION, inherited by every process a test starts (workers, manage.py).
    assert os.environ.get("PYTEST_VERSION")
    assert settings_in(checkout, clean_env(PYTEST_VERSION=os.environ["PYTEST_VERSION"])) == DEFAULTS


def test_manage_py_commands_see_the_env_file(tmp_path):
    """The real manage.py in this checkout, as a developer runs it after `make run`."""
    env_file = tmp_path / ".env"
    env_file.write_text(DEMO_ENV)
    code = "from django.conf import settings as s; print(s.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS, s.DEMO_BASE_URL)"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=clean_env(DOTENV_FILE=str(env_file)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['127.0.0.1']", "http://127.0.0.1:9000"]
