"""The shape of the code: which app may import which, no import cycles whatever the import order, and
services that know nothing of HTTP."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("automations", "records", "workspaces", "config")


# Moving out of workspaces on another branch (the demo data belongs to the tour, not to workspaces);
# drop this exception once it has moved.
def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (imports inside functions count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_workspaces_imports_neither_records_nor_automations():
    """workspaces is the base app: records and automations build on it, never the other way (it talks
    to them through documented signals, e.g. ``entity_fields_changing``)."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in ("records", "automations")
        )
        for path in python_files("workspaces")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_records_does_not_import_automations():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "automations")
        for path in python_files("records")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


@pytest.mark.parametrize(
    "path",
    [
        "automations/services.py",
        "automations/selectors.py",
        "records/services.py",
        "records/selectors.py",
        "workspaces/services.py",
        "workspaces/selectors.py",
        "config/errors.py",
        "config/registry.py",
    ],
)
def test_services_and_selectors_know_nothing_of_http(path):
    """They raise domain errors (``config.errors``); ``config.api`` maps them to HTTP once."""
    imports = imported_modules(ROOT / path)
    assert not [m for m in imports if m.startswith(("rest_framework", "config.api", "config.renderers"))]


def test_the_layer_checks_see_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from records.models import Record\n    import automations.tasks\n")
    assert imported_modules(sample) == {"os", "records.models", "automations.tasks"}


# --------------------------------------------------------------------------- import orders

# Run by a fresh interpreter: third-party packages are imported once, then every check runs in a child
# forked from that state (so no project module is imported yet) with Django set up as ``manage.py``
# does. Admin autodiscovery is off in the children that test one module, so that admin modules too
# are imported first by the check and not by ``django.setup()``.
IMPORT_CHECK = r"""
import importlib, json, os, sys, tempfile, traceback
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
import django.contrib.admin
import django.db.models
import jinja2.sandbox, requests, rest_framework.serializers, rest_framework.viewsets, drf_spectacular.openapi

modules, orders = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out_dir = tempfile.mkdtemp()


def check(name, first, rest, autodiscover):
    if not autodiscover:
        django.contrib.admin.autodiscover = lambda: None
    django.setup()
    for module in [first, *rest] if first else rest:
        importlib.import_module(module)


jobs = [(f"alone:{m}", m, [], False) for m in modules]
jobs += [(f"order:{label}", None, order, label == "as manage.py does") for label, order in orders.items()]
running, failures, started = {}, {}, 0
while jobs or running:
    while jobs and len(running) < 2:
        label, first, rest, autodiscover = jobs.pop(0)
        started += 1
        path = os.path.join(out_dir, str(started))
        pid = os.fork()
        if pid == 0:
            try:
                check(label, first, rest, autodiscover)
            except BaseException:
                with open(path, "w") as f:
                    f.write(traceback.format_exc())
                os._exit(1)
            os._exit(0)
        running[pid] = (label, path)
    pid, status = os.wait()
    label, path = running.pop(pid)
    if status:
        failures[label] = open(path).read() if os.path.exists(path) else f"exit status {status}"
print(json.dumps(failures))
"""


def project_modules() -> list[str]:
    return [module_name(path) for package in PACKAGES for path in python_files(package)]


def test_every_module_imports_on_its_own_and_in_several_orders():
    modules = project_modules()
    assert "automations.executor" in modules and "config.api" in modules and len(modules) > 50
    shuffled = [list(modules), list(modules)]
    for seed, order in enumerate(shuffled):
        random.Random(seed).shuffle(order)
    orders = {
        "as manage.py does": modules,
        "sorted": sorted(modules),
        "reversed": sorted(modules, reverse=True),
        "shuffled 0": shuffled[0],
        "shuffled 1": shuffled[1],
    }
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, json.dumps(modules), json.dumps(orders)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n\n".join(f"{label}:\n{tb}" for label, tb in failures.items())


WRITE_METHODS = {"save", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
QUERYSET_WRITE_METHODS = {"create", "update"}  # dict.update too: flagged only on a manager or queryset


def direct_writes(path: Path) -> list[str]:
    """Calls that write to the database around the services (``x.save()``, ``qs.update(...)``, ...);
    ``formset.save(commit=False)`` only builds objects and is allowed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = ast.unparse(node.func.value)
        on_queryset = "objects" in receiver or "queryset" in receiver
        if node.func.attr in WRITE_METHODS or (node.func.attr in QUERYSET_WRITE_METHODS and on_queryset):
            builds_only = any(
                k.arg == "commit" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in node.keywords
            )
            if not builds_only:
                found.append(f"line {node.lineno}: .{node.func.attr}(...)")
    return found


@pytest.mark.parametrize("path", ["automations/admin.py", "records/admin.py"])
def test_the_admin_writes_only_through_services(path):
    assert direct_writes(ROOT / path) == []


def test_the_write_check_sees_a_direct_save(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def save_model(obj, formset, queryset, cleaned):\n"
        "    formset.save(commit=False)\n"
        "    cleaned.update({})\n"
        "    obj.save()\n"
        "    queryset.update(is_active=False)\n"
        "    Task.objects.create(title='x')\n"
    )
    assert direct_writes(sample) == ["line 4: .save(...)", "line 5: .update(...)", "line 6: .create(...)"]
