"""User templates (``{{name}}``, ``{{record.data.email}}``, ``{{ name|default("there") }}``) rendered in
Jinja2's immutable sandbox.

Rules types can be sure of:

- Missing values (and dotted paths through missing values) render empty; ``None`` renders empty.
- ``mode`` decides how every ``{{ }}`` output is escaped: ``text`` (as is), ``html`` (HTML-escaped),
  ``json`` (escaped as JSON string content, so ``{"name": "{{name}}"}`` stays valid JSON; use
  ``{{ value|tojson }}`` for a raw JSON value) and ``subject`` (as text, but an output with a line break
  is refused: header injection).
- Internals (``{{ ''.__class__ }}``), includes/imports/extends, ``str.format`` and size-amplifying
  operations are refused; the output is capped at ``AUTOMATIONS_TEMPLATE_MAX_OUTPUT`` characters and a
  render may iterate at most ``RENDER_ITERATION_BUDGET`` ``range()`` items.

``render()`` raises ``TemplateRenderError`` (a permanent action error with a readable message);
``validate_template()`` is the save-time check (syntax, forbidden tags, private attributes).
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
from typing import Any, Literal

from django.conf import settings
from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.filters import do_center, do_indent, do_replace
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_eval_context

from .exceptions import TemplateRenderError

Mode = Literal["text", "html", "json", "subject"]
MODES: tuple[str, ...] = ("text", "html", "json", "subject")

# Across all range() calls of one render: stops nested loops from burning the worker's CPU.
RENDER_ITERATION_BUDGET = 100_000
# Largest width/precision accepted in printf-style formatting and width-taking filters.
MAX_FORMAT_WIDTH = 1_000
COMPILED_CACHE_SIZE = 1_024

_iterations_left: contextvars.ContextVar[int] = contextvars.ContextVar("template_iterations_left", default=0)


class JsonValue(str):
    """Already-serialised JSON (from ``|tojson`` in json mode): inserted without string escaping."""


class _Undefined(ChainableUndefined):
    """Missing values (and attributes of missing values) render as an empty string; an undefined that
    stands for a sandbox violation raises instead of hiding it."""

    __slots__ = ()

    def _is_violation(self) -> bool:
        return self._undefined_exception is SecurityError

    def __str__(self) -> str:
        if self._is_violation():
            self._fail_with_undefined_error()
        return ""

    def __iter__(self):
        if self._is_violation():
            self._fail_with_undefined_error()
        return iter(())

    def __bool__(self) -> bool:
        if self._is_violation():
            self._fail_with_undefined_error()
        return False


def _size_limit() -> int:
    return int(settings.AUTOMATIONS_TEMPLATE_MAX_OUTPUT)


def _too_large(what: str) -> TemplateRenderError:
    return TemplateRenderError(f"Template output too large: {what} exceeds {_size_limit()} characters.")


_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_WIDTH.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FORMAT_WIDTH):
                raise SecurityError(f"Format widths above {MAX_FORMAT_WIDTH} are not allowed.")


def _budgeted_range(*args: int) -> range:
    rng = range(*args)
    left = _iterations_left.get() - len(rng)
    if left < 0:
        raise SecurityError(f"Loops may iterate at most {RENDER_ITERATION_BUDGET} items per template.")
    _iterations_left.set(left)
    return rng


def _safe_center(value: str, width: int = 80) -> str:
    if int(width) > MAX_FORMAT_WIDTH:
        raise SecurityError(f"center() width above {MAX_FORMAT_WIDTH} is not allowed.")
    return do_center(value, width)


def _safe_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    if isinstance(width, int) and width > MAX_FORMAT_WIDTH or isinstance(width, str) and len(width) > MAX_FORMAT_WIDTH:
        raise SecurityError(f"indent() width above {MAX_FORMAT_WIDTH} is not allowed.")
    return do_indent(value, width, first, blank)


@pass_eval_context
def _safe_replace(eval_ctx, s: str, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    occurrences = text.count(old) if count is None else min(int(count), text.count(old))
    if len(text) + occurrences * max(len(new) - len(old), 0) > _size_limit():
        raise _too_large("replace()")
    return do_replace(eval_ctx, s, old, new, count)


def _safe_format(value: str, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise SecurityError("format() takes positional or keyword arguments, not both.")
    _check_printf(str(value))
    return str(value) % (kwargs or args)


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Like Jinja's ``default``, but a null or empty field counts as missing (what a template author
    means by ``{{ name|default("there") }}``)."""
    if isinstance(value, _Undefined) or value is None or value == "" or (boolean and not value):
        return default_value
    return value


def _json_dumps(value: Any) -> str:
    return json.dumps(None if isinstance(value, _Undefined) else value, default=str, ensure_ascii=False)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox plus guards against memory blow-ups (``'a' * 10**9``) and ``str.format``."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    UNSAFE_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in self.UNSAFE_STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def refuse(*args: Any, **kwargs: Any) -> str:
            raise SecurityError("str.format() is not allowed in templates; use the format filter.")

        return refuse

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        limit = _size_limit()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > limit:
                    raise _too_large("repetition")
        elif operator == "**":
            big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 1
            if big and right * abs(left).bit_length() > 4096:
                raise SecurityError("Number too large.")
        elif operator == "%":
            if isinstance(left, str):
                _check_printf(left)
        elif operator == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and len(left) + len(right) > limit:
                raise _too_large("concatenation")
        return super().call_binop(context, operator, left, right)


def _finalize_for(mode: str):
    def finalize(value: Any) -> Any:
        if isinstance(value, _Undefined):
            return str(value)  # "" or SecurityError for a sandbox violation
        if value is None:
            return ""
        if mode != "json":
            return value
        if isinstance(value, JsonValue):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        text = value if isinstance(value, str) else _json_dumps(value)
        # JSON string content: quotes, backslashes and control characters escaped.
        return json.dumps(str(text), ensure_ascii=False)[1:-1]

    return finalize


@functools.cache
def _environment(mode: str) -> _Environment:
    env = _Environment(
        autoescape=mode == "html",
        undefined=_Undefined,
        finalize=_finalize_for(mode),
        loader=None,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,  # compiled templates are cached by _compile() below
    )
    # No mutable accumulation across loop iterations (namespace) and a per-render loop budget.
    env.globals.pop("namespace", None)
    env.globals.pop("lipsum", None)
    env.globals["range"] = _budgeted_range
    env.filters.update(
        {
            "default": _default,
            "d": _default,
            "center": _safe_center,
            "indent": _safe_indent,
            "replace": _safe_replace,
            "format": _safe_format,
        }
    )
    if mode == "json":
        env.filters["tojson"] = lambda value, indent=None: JsonValue(_json_dumps(value))
    return env


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Unknown template mode {mode!r}; expected one of {', '.join(MODES)}.")


FORBIDDEN_TAGS = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from-import",
    nodes.Extends: "extends",
}


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"Template syntax error on line {exc.lineno}: {exc.message}"


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(source: str, mode: str):
    env = _environment(mode)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_syntax_message(exc)) from None
    for node_type, tag in FORBIDDEN_TAGS.items():
        if next(ast.find_all(node_type), None) is not None:
            raise TemplateRenderError(f"Template tag '{tag}' is not allowed: templates cannot load other templates.")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateRenderError(f"Access to '{name}' is not allowed in templates.")
    return env.from_string(ast)


def validate_template(text: Any, *, mode: Mode = "text") -> str:
    """Save-time check: returns the template text or raises ``TemplateRenderError`` with a message for
    the user (syntax error with its line, forbidden tags, private attributes, a line break in a subject)."""
    _check_mode(mode)
    if not isinstance(text, str):
        raise TemplateRenderError("Must be a string.")
    if mode == "subject" and ("\r" in text or "\n" in text):
        raise TemplateRenderError("A subject may not contain line breaks.")
    _compile(text, mode)
    return text


def render(template: str, variables: dict[str, Any], *, mode: Mode = "text") -> str:
    """Render a user template in the sandbox. Raises ``TemplateRenderError`` for any failure."""
    _check_mode(mode)
    if not isinstance(template, str):
        raise TemplateRenderError("Template must be a string.")
    if "{" not in template:
        output = template  # fast path: plain text, nothing to evaluate or escape
    else:
        compiled = _compile(template, mode)
        limit = _size_limit()
        token = _iterations_left.set(RENDER_ITERATION_BUDGET)
        parts: list[str] = []
        size = 0
        try:
            for chunk in compiled.generate(variables):
                size += len(chunk)
                if size > limit:
                    raise _too_large("the rendered template")
                parts.append(chunk)
        except TemplateRenderError:
            raise
        except SecurityError as exc:
            raise TemplateRenderError(f"Template refused by the sandbox: {exc}") from None
        except TemplateError as exc:
            raise TemplateRenderError(f"Template error: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as exc:
            raise TemplateRenderError(f"Template error: {type(exc).__name__}: {exc}") from None
        finally:
            _iterations_left.reset(token)
        output = "".join(parts)
    if len(output) > _size_limit():
        raise _too_large("the rendered template")
    if mode == "subject" and ("\r" in output or "\n" in output):
        raise TemplateRenderError("The rendered subject contains a line break, which is not allowed in a header.")
    return str(output)


def step_references(text: Any) -> set[int]:
    """The step results a template names (``{{ steps[1].status_code }}`` -> {1}); a template that does not
    parse names none (its own validation reports it)."""
    if not isinstance(text, str) or "steps" not in text:
        return set()
    try:
        ast = _environment("text").parse(text)
    except TemplateSyntaxError:
        return set()
    found: set[int] = set()
    for node in ast.find_all((nodes.Getitem, nodes.Getattr)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "steps"):
            continue
        key = getattr(node.arg, "value", None) if isinstance(node, nodes.Getitem) else node.attr
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            found.add(int(key))
    return found
