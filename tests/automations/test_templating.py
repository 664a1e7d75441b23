"""User templates: variables, escaping per mode, the sandbox and its limits."""

import json

import pytest

from automations import templating
from automations.exceptions import TemplateRenderError
from automations.templating import render, validate_template

VARIABLES = {
    "name": "Ada",
    "id": "rec-1",
    "amount": 42,
    "subscribed": True,
    "nothing": None,
    "empty": "",
    "record": {"id": "rec-1", "data": {"name": "Ada", "email": "ada@example.com"}},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{name}}", "Hi Ada"),
        ("{{id}}", "rec-1"),
        ("{{ record.data.email }}", "ada@example.com"),
        ("{{ record['data']['name'] }}", "Ada"),
        ('Hi {{ name|default("there") }}', "Hi Ada"),
        ('Hi {{ missing|default("there") }}', "Hi there"),
        ('Hi {{ nothing|default("there") }}', "Hi there"),
        ('Hi {{ empty|default("there") }}', "Hi there"),
        ("{{ name|upper }} {{ amount + 1 }}", "ADA 43"),
        ("[{{ missing }}]", "[]"),
        ("[{{ missing.deeper.still }}]", "[]"),
        ("[{{ record.data.missing.x }}]", "[]"),
        ("[{{ nothing }}]", "[]"),
        ("{% if subscribed %}yes{% else %}no{% endif %}", "yes"),
        ("{% for k in record.data|dictsort %}{{ k[0] }};{% endfor %}", "email;name;"),
        ("no placeholders at all", "no placeholders at all"),
    ],
)
def test_text_mode_variables_paths_and_filters(template, expected):
    assert render(template, VARIABLES, mode="text") == expected


def test_html_mode_escapes_values_but_not_the_template():
    out = render("<p>Hi {{ name }}</p>", {"name": '<script>alert("x")</script>'}, mode="html")
    assert out == "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>"


def test_text_mode_does_not_escape():
    assert render("{{ name }}", {"name": "<b>&"}, mode="text") == "<b>&"


@pytest.mark.parametrize(
    "value",
    ['He said "hi"', "back\\slash", "line\nbreak\ttab", "</script>", "emoji 🎉", "\u2028", "null"],
)
def test_json_mode_keeps_string_templates_valid_json(value):
    template = '{"name": "{{ name }}", "n": {{ amount }}, "ok": {{ flag }}}'
    out = render(template, {"name": value, "amount": 3, "flag": True}, mode="json")
    assert json.loads(out) == {"name": value, "n": 3, "ok": True}


def test_json_mode_tojson_inserts_raw_json_and_missing_values_are_empty():
    out = render('{"record": {{ record|tojson }}, "missing": "{{ nope.x }}"}', VARIABLES, mode="json")
    assert json.loads(out) == {"record": VARIABLES["record"], "missing": ""}


def test_json_mode_structures_are_escaped_as_strings():
    out = render('{"data": "{{ record.data }}"}', VARIABLES, mode="json")
    assert json.loads(json.loads(out)["data"]) == VARIABLES["record"]["data"]


def test_subject_mode_refuses_line_breaks_from_values():
    assert render("Welcome {{ name }}!", VARIABLES, mode="subject") == "Welcome Ada!"
    for evil in ("Ada\r\nBcc: victim@example.com", "Ada\nX", "Ada\rX"):
        with pytest.raises(TemplateRenderError, match="line break"):
            render("Welcome {{ name }}!", {"name": evil}, mode="subject")


def test_subject_template_with_a_line_break_is_refused_at_save_time():
    with pytest.raises(TemplateRenderError, match="line breaks"):
        validate_template("Hello\nBcc: x@example.com", mode="subject")


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__ }}",
        "{{ record['__class__'] }}",
        "{{ ''|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ record.data.items.__self__ }}",
    ],
)
def test_sandbox_refuses_internals(template):
    with pytest.raises(TemplateRenderError):
        render(template, VARIABLES, mode="text")


@pytest.mark.parametrize(
    "template",
    ["{% include 'x.html' %}", "{% import 'macros' as m %}", "{% from 'x' import y %}", "{% extends 'base' %}"],
)
def test_no_loader_includes_imports_and_extends_fail_cleanly(template):
    with pytest.raises(TemplateRenderError, match="not allowed"):
        validate_template(template)
    with pytest.raises(TemplateRenderError):
        render(template, VARIABLES, mode="text")


def test_mutating_builtins_is_refused():
    with pytest.raises(TemplateRenderError):
        render("{{ record.data.update({'x': 1}) }}", VARIABLES, mode="text")
    assert "x" not in VARIABLES["record"]["data"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 1000000000 }}",
        "{{ 9 ** 99999999 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ '%999999999s'|format('x') }}",
        "{{ 'x'|center(999999999) }}",
        "{{ 'x'.ljust(999999999) }}",
        "{{ ('x' * 50000)|replace('', 'yyyyyyyyyy') }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'xx' }}{% endfor %}",
    ],
)
def test_unbounded_output_and_work_are_refused(template, settings):
    settings.AUTOMATIONS_TEMPLATE_MAX_OUTPUT = 100_000
    with pytest.raises(TemplateRenderError):
        render(template, VARIABLES, mode="text")


def test_output_cap_applies_to_values(settings):
    settings.AUTOMATIONS_TEMPLATE_MAX_OUTPUT = 50
    assert render("{{ name }}", {"name": "x" * 50}, mode="text") == "x" * 50
    with pytest.raises(TemplateRenderError, match="too large"):
        render("{{ name }}", {"name": "x" * 51}, mode="text")


def test_syntax_errors_have_a_clear_message():
    with pytest.raises(TemplateRenderError, match=r"syntax error on line 2"):
        validate_template("Hello\n{{ name ")
    with pytest.raises(TemplateRenderError, match="syntax error"):
        render("{% if %}", VARIABLES, mode="text")


def test_validate_template_returns_the_text_and_refuses_private_attributes_early():
    assert validate_template("Hi {{ name }}", mode="html") == "Hi {{ name }}"
    with pytest.raises(TemplateRenderError, match="__globals__"):
        validate_template("{{ x.__globals__ }}")


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError, match="mode"):
        render("x", {}, mode="yaml")


def test_compiled_templates_are_cached():
    templating._compile.cache_clear()
    for _ in range(3):
        render("Cached {{ name }}", VARIABLES, mode="text")
    info = templating._compile.cache_info()
    assert info.misses == 1
    assert info.hits == 2
