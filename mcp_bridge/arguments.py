"""Tool arguments checked against the tool's `inputSchema` before any request is built.

MCP 2025-11-25 "Tools": a server validates tool inputs, and an input error is a tool result
with `isError: true` that the model can read and correct. The schema is the one published in
`tools/list`, so a model is refused only for what it was told:

* required arguments present, and no argument the tool does not declare;
* each argument's JSON type (JSON Schema 2020-12 §6.1.1: `type`, with `anyOf`/`oneOf`/`allOf`
  alternatives and `$ref`s into the schema's `$defs`), `enum`/`const` (§6.1.2, §6.1.3), the
  item types of an array (§10.3.1.2), and the string `format`s FastAPI routes declare
  (§7.3: `date`, `date-time`, `uuid`, `email`, `ipv4`, `ipv6`);
* a path argument must also fit its route's path convertor (`{item_id:int}` takes digits
  only), else the router would pass the request on to a later route.

Deeper rules (object properties, lengths, bounds, patterns) are the route's own validation,
which answers 422 with the field named. Checks are compiled once per tool into closures,
so a call costs one dictionary lookup and one function call per argument (no schema walk,
no `jsonschema` at run time; `tests/bridge/test_arguments.py` compares the result with
`jsonschema`). Two deliberate leniencies: `null` for an optional argument means "not
given", and a `date-time` may omit its offset (the route's parser reads it as local time).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Check = Callable[[Any], Any]  # the value (an integral float as int) or raises Mismatch


class ArgumentError(ValueError):
    """The arguments cannot be turned into a safe request for this tool."""


class Mismatch(ValueError):
    """A value does not fit a schema; the message says what was expected."""


_NONE_TYPE = type(None)
# JSON Schema's types (§6.1.1): the Python types of their values, and their names in messages.
_JSON_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "number": ((int, float), "a number"),
    "boolean": ((bool,), "a boolean"),
    "array": ((list,), "an array"),
    "object": ((dict,), "an object"),
    "null": ((_NONE_TYPE,), "null"),
}
# The name of a value's own type: the last of each entry (an int is "an integer", a float "a number").
_KIND_NAMES = {types[-1]: text for types, text in _JSON_TYPES.values()}
_MAX_DEPTH = 16  # $ref chains and nested items: deeper schemas are left to the route


def scalar_text(value: Any) -> str:
    """The text a scalar argument takes in a path, query or header (JSON spelling of booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ArgumentError("expected a string, number or boolean")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- string formats (JSON Schema 2020-12 §7.3, the spelling jsonschema's FormatChecker uses) ----

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# RFC 3339 §5.6 date-time, hours 00-23 and minutes and seconds 00-59 (also in the offset); the
# offset is optional here (see the module docstring). RFC 3339 §5.7 allows a leap second (60);
# neither jsonschema's checker nor the route's parser (pydantic) accepts one, so neither does this.
_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?", re.ASCII
)


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    return _DATE.fullmatch(text) is not None and _parses(datetime.date.fromisoformat, text)


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    return match is not None and _is_date(match.group(1))


def _is_uuid(text: str) -> bool:
    return _parses(uuid.UUID, text) and all(text[position] == "-" for position in (8, 13, 18, 23))


def _is_ipv6(text: str) -> bool:
    return _parses(ipaddress.IPv6Address, text) and "%" not in text  # no zone id ("fe80::1%eth0")


FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "date": (_is_date, "a date (YYYY-MM-DD)"),
    "date-time": (_is_date_time, "a date-time (YYYY-MM-DDThh:mm:ssZ)"),
    "uuid": (_is_uuid, "a UUID (8-4-4-4-12 hex digits)"),
    "email": (lambda text: "@" in text, "an e-mail address"),
    "ipv4": (functools.partial(_parses, ipaddress.IPv4Address), "an IPv4 address"),
    "ipv6": (_is_ipv6, "an IPv6 address"),
}


# -- compiling a schema into a check --------------------------------------------------------


def _enum_key(value: Any) -> tuple[str, Any]:
    """Equality as JSON Schema defines it (§4.2.2): true is not 1, 1 is 1.0."""
    kind = type(value)
    if kind is bool:
        return ("boolean", value)
    if kind in (int, float):
        return ("number", value)
    if kind in (list, dict):
        return ("json", repr(_canonical(value)))
    return (kind.__name__, value)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return _enum_key(value)


def _type_check(names: Iterable[str]) -> Check:
    names = [n for n in names if n in _JSON_TYPES]
    accepted = frozenset(t for n in names for t in _JSON_TYPES[n][0])
    integral_floats = "integer" in names and "number" not in names
    expected = " or ".join(_JSON_TYPES[n][1] for n in names)

    def check(value: Any) -> Any:
        if type(value) in accepted:
            return value
        if integral_floats and type(value) is float and value.is_integer():
            return int(value)  # JSON Schema's integer includes 1.0 (§6.1.1)
        raise Mismatch(expected)

    _mark_type_only(check, accepted)
    return check


def _mark_type_only(check: Check, accepted: frozenset[type]) -> None:
    """Record that `check` is a plain type test: `ArgumentChecks` then tests `type(value) in
    accepted` inline and calls the check only for a value that fails it (to refuse it, or to
    turn an integral float into an int). null is always left to the call (see `__call__`)."""
    check.accepts = accepted - {_NONE_TYPE}  # type: ignore[attr-defined]


def _type_only(check: Check | None) -> frozenset[type] | None:
    return getattr(check, "accepts", None)


def _enum_check(values: list[Any]) -> Check:
    keys = frozenset(_enum_key(v) for v in values)
    expected = "one of " + ", ".join(_shown(v) for v in values[:20]) + (", ..." if len(values) > 20 else "")

    def check(value: Any) -> Any:
        try:
            if _enum_key(value) in keys:
                return value
        except TypeError:  # an unhashable value inside a list or object
            pass
        raise Mismatch(expected)

    if all(type(v) is str for v in values):
        # An `enum` of strings (an Enum parameter of a route): `ArgumentChecks` tests membership
        # inline and calls the check only to refuse a value.
        check.values = frozenset(values)  # type: ignore[attr-defined]
    return check


def _format_check(test: Callable[[str], bool], expected: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not str or test(value):
            return value
        raise Mismatch(expected)

    return check


def _items_check(item: Check, *, array: bool = False) -> Check:
    """Each item of an array passes `item`; a value that is no array is refused when `array`
    (`"type": "array"` checked here too), else left alone. When `item` is a plain type test, a
    first loop tests it inline and calls nothing when every item passes (half the time of a
    call per item); only an array with an item that fails it is walked with calls."""
    accepted = _type_only(item) or frozenset()

    def check(value: Any) -> Any:
        if type(value) is not list:
            if array:
                raise Mismatch("an array")
            return value
        for element in value:
            if type(element) not in accepted:
                break
        else:
            return value
        changed: list[Any] | None = None
        for index, element in enumerate(value):
            try:
                result = item(element)
            except Mismatch as exc:
                raise Mismatch(f"{exc} at item {index}") from None
            if result is not element:
                changed = changed if changed is not None else list(value)
                changed[index] = result
        return value if changed is None else changed

    return check


def all_of(checks: list[Check]) -> Check:
    """One check running `checks` in order, each on what the previous one returned."""
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> Any:
        for one in checks:
            value = one(value)
        return value

    return check


def _any_of(checks: list[Check]) -> Check:
    def check(value: Any) -> Any:
        expected: list[str] = []
        for one in checks:
            try:
                return one(value)
            except Mismatch as exc:
                expected.append(str(exc))
        raise Mismatch(" or ".join(dict.fromkeys(expected)))

    branches = [_type_only(one) for one in checks]
    if all(accepted is not None for accepted in branches):
        _mark_type_only(check, frozenset().union(*branches))  # type: ignore[arg-type]
    return check


def compile_check(schema: Any, defs: Mapping[str, Any], depth: int = 0) -> Check | None:
    """A check for the keywords named in the module docstring; None when nothing is checked."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    checks: list[Check] = []
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = compile_check(defs.get(ref[len("#/$defs/") :]), defs, depth + 1)
        if target is not None:
            checks.append(target)
    declared = schema.get("type")
    types: list[Any] = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    typed = any(t in _JSON_TYPES for t in types)
    enum = schema.get("enum") if isinstance(schema.get("enum"), list) and schema["enum"] else None
    # An enum of strings only: membership implies the type.
    string_enum = enum is not None and all(type(v) is str for v in enum) and (not typed or "string" in types)
    items = compile_check(schema.get("items"), defs, depth + 1)
    if typed and types == ["array"] and items is not None:
        checks.append(_items_check(items, array=True))
        items = None
    elif typed and not string_enum:
        checks.append(_type_check(types))
    if "const" in schema:
        checks.append(_enum_check([schema["const"]]))
    if enum is not None:
        checks.append(_enum_check(enum))
    known_format = FORMATS.get(schema["format"]) if isinstance(schema.get("format"), str) else None
    if known_format is not None:
        checks.append(_format_check(*known_format))
    if items is not None:
        checks.append(_items_check(items))
    for keyword in ("anyOf", "oneOf"):
        # oneOf is checked as anyOf: its branches from FastAPI models are disjoint, and an
        # overlap is for the route to reject, not a reason to refuse a call here.
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            compiled = [compile_check(b, defs, depth + 1) for b in branches]
            if all(c is not None for c in compiled):
                checks.append(_any_of(compiled))  # type: ignore[arg-type]
    for branch in schema.get("allOf", ()) if isinstance(schema.get("allOf"), list) else ():
        compiled_branch = compile_check(branch, defs, depth + 1)
        if compiled_branch is not None:
            checks.append(compiled_branch)
    return all_of(checks) if checks else None


def convertor_check(parameter: str, convertor_name: str, regex: str) -> Check:
    """The path text of a value must fit the route's convertor, else the router skips the route.

    Starlette matches `{name:int}` with the convertor's regular expression on the decoded
    path; a value outside it ("-1", "all") makes the route not match at all, and the request
    falls through to whatever later route matches instead.
    """
    pattern = re.compile(regex)
    described = _CONVERTOR_TEXT.get(convertor_name, f"text matching {regex}")
    expected = f"a value that fits the route's path parameter {{{parameter}:{convertor_name}}} ({described})"

    def check(value: Any) -> Any:
        if not isinstance(value, (str, int, float, _NONE_TYPE)) or pattern.fullmatch(scalar_text(value)) is None:
            raise Mismatch(expected)  # not a scalar (`scalar_text` takes no other), or outside the pattern
        return value

    return check


_CONVERTOR_TEXT = {
    "int": "digits 0-9 only, no sign",
    "float": "digits with an optional decimal part, no sign or exponent",
    "uuid": "a UUID in hex digits",
}


class ArgumentChecks:
    """The compiled checks of one tool: run on every call, before the request is built.

    Most arguments' whole check is a type test (`"type": "string"`, an optional integer...) or
    membership in an enum of strings: for those the loop tests the value itself instead of
    calling a check, which halves the cost (the bench tool's 8 arguments, `bench/` app: 3.7 µs
    instead of 7.4 µs per call, measured on a loaded shared machine).
    """

    __slots__ = ("_inline", "_inline_strings", "_names", "_required_set", "checks", "required")

    def __init__(self, checks: Mapping[str, Check | None], required: Iterable[str]) -> None:
        self.checks = dict(checks)
        self.required = tuple(dict.fromkeys(required))
        self._required_set = frozenset(self.required)
        # name -> the types that pass without a call; None: anything passes (no check, optional).
        self._inline: dict[str, frozenset[type] | None] = {}
        for name, check in self.checks.items():
            if check is None:
                self._inline[name] = frozenset() if name in self._required_set else None
            elif (accepted := _type_only(check)) is not None:
                self._inline[name] = accepted
        # name -> the strings of an `enum` of strings, tested inline the same way.
        self._inline_strings: dict[str, frozenset[str]] = {
            name: values for name, check in self.checks.items() if (values := getattr(check, "values", None)) is not None
        }
        names = sorted(self.checks)
        self._names = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "") if names else "none"

    def __call__(self, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        """`arguments`, or a copy with integral floats of integer arguments made ints.

        Raises ArgumentError naming the first argument that does not fit.
        """
        if not arguments.keys() >= self._required_set:
            raise self._missing(arguments)
        inline = self._inline
        changed: dict[str, Any] | None = None
        for name, value in arguments.items():
            accepted = inline.get(name, _CALL)
            if accepted is None or type(value) in accepted:
                continue
            strings = self._inline_strings.get(name)
            if strings is not None and type(value) is str and value in strings:
                continue
            check = self.checks.get(name, _UNDECLARED)
            if check is _UNDECLARED:
                raise ArgumentError(f"unexpected argument {_shown(name)} (this tool takes: {self._names})")
            if value is None:
                if name in self._required_set:
                    raise self._missing(arguments)
                continue  # null for an optional argument: not given
            if check is None:
                continue
            try:
                result = check(value)
            except Mismatch as exc:
                raise ArgumentError(f"argument {name!r}: expected {exc}, got {_got(value)}") from None
            if result is not value:
                changed = changed if changed is not None else dict(arguments)
                changed[name] = result
        return arguments if changed is None else changed

    def _missing(self, arguments: Mapping[str, Any]) -> ArgumentError:
        missing = [name for name in self.required if arguments.get(name) is None]
        return ArgumentError("missing required argument(s): " + ", ".join(missing))


def _got(value: Any) -> str:
    """JSON's name for the type of `value`, and a scalar value itself, for messages."""
    kind = _KIND_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return f"{kind} {_shown(value)}"
    return kind


_UNDECLARED: Any = object()
_CALL: frozenset[type] = frozenset()  # no inline test: the argument's check is called
