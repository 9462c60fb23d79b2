"""The values the shim seals instead of storing: one dataclass per purpose.

The shim keeps no state between requests: whatever a later step needs travels with the
request, signed (:mod:`.sealing`). Each kind of value is a class here that owns

- its ``purpose``, the salt it is signed with, so a value minted for one purpose (a client_id)
  is never accepted as another (a code);
- its ``lifetime``, the default maximum age in seconds (operators override it through
  :class:`.context.Lifetimes`, whose defaults are these);
- its wire mapping: each field is declared with :func:`wire` (its short key, how it is read back
  and written, when it is left out), which :meth:`SealedPayload.to_wire` and
  :meth:`SealedPayload.from_wire` follow, in field order or ``wire_order``. The wire keys are
  short because every value travels in URLs, forms and cookies; they never change, so values
  sealed by earlier versions keep opening.

A value opens only if its signature is good and its age within the lifetime; then its contents
are checked for shape. A validly signed value with missing keys or wrong types (only a bug or a
leaked key could make one) is refused like a forged one, as :class:`.sealing.SealError`
``"malformed"``, which every endpoint answers with its usual OAuth error.

The flow, and what each step seals for the next:

=====================  ==========================  ===================================
step                   payload                     carried in
=====================  ==========================  ===================================
registration           :class:`ClientRegistration`  the ``client_id`` (RFC 7591 §3.2.1)
authorize -> consent   :class:`ConsentTicket`       the consent form's hidden ``ticket``
consent -> IdP         :class:`UpstreamState`       ``state`` sent to the IdP (RFC 6749 §4.1.1)
callback -> client     :class:`AuthorizationCode`   ``code`` (RFC 6749 §4.1.2)
token -> client        :class:`RefreshToken`        ``refresh_token`` (RFC 6749 §5.1)
=====================  ==========================  ===================================

Adding a kind of value is adding one dataclass here: subclass :class:`SealedPayload`, name its
``purpose`` (a new salt: the class refuses to be defined with one already taken) and
``lifetime``, and declare its fields with :func:`wire`; decorate it with :func:`payload`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, TypeVar, dataclass_transform

from . import sealing
from .config import Lifetimes
from .sealing import Sealer, SealError

# Each payload's default lifetime is the operator-facing default of the same name.
_DEFAULT_LIFETIMES = Lifetimes()

__all__ = [
    "AuthorizationCode",
    "ClientRegistration",
    "ConsentTicket",
    "RefreshToken",
    "SealedPayload",
    "UpstreamState",
    "WireField",
    "payload",
    "payload_kinds",
    "wire",
]

P = TypeVar("P", bound="SealedPayload")

# Every payload class, by the purpose it owns.
_KINDS: dict[str, type[SealedPayload]] = {}

# What a validly signed value with the wrong shape raises while being read.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    return value


def _optional_text(value: object) -> str | None:
    if value is not None and type(value) is not str:
        raise TypeError("expected a string or null")
    return value


def _flag(value: object) -> bool:
    """``rg``: written as 0 or 1 (booleans read too, as JSON ``true``/``false`` would be)."""
    if type(value) not in (int, bool):
        raise TypeError("expected 0 or 1")
    return bool(value)


def _text_map(value: object) -> dict[str, str]:
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        raise TypeError("expected an object of strings")
    return value


def _text_tuple(value: object) -> tuple[str, ...]:
    if type(value) is not list or not all(type(u) is str for u in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _application_type(value: object) -> str:
    """``t``: null or empty reads as ``native``, the RFC 7591 §2 default."""
    return _optional_text(value) or "native"


def _is_none(value: object) -> bool:
    return value is None


# ``absent`` of a key that must be on the wire.
REQUIRED: Any = object()
# ``forwarded_params`` of a ticket without ``f``: empty, and shared, so never to be changed.
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class WireField(NamedTuple):
    """How one field of a payload travels: written under ``key`` as ``write(value)`` unless
    ``omit(value)``; read back as ``read(wire[key])`` (which raises on a wrong type), or as
    ``absent`` when the key is missing (a :data:`REQUIRED` key must not be)."""

    attr: str
    key: str
    read: Callable[[Any], Any] = _text
    absent: Any = REQUIRED
    write: Callable[[Any], Any] | None = None
    omit: Callable[[Any], bool] | None = None


class SealedPayload:
    """A value the shim signs for one purpose and reads back later (base of every payload).

    The payloads are ``@dataclass(slots=True)``, not frozen (as :class:`.clients.ClientCredentials`):
    nothing assigns to a payload's fields after it is built, and a frozen dataclass's ``__init__``
    sets every field through ``object.__setattr__``, which the hot paths pay for. Measured with
    ``bench/inproc_oauth.py`` (µs per request, same loaded machine, alternating runs): frozen
    144-153 / 172-173 / 182-184 for authorize / callback / token, not frozen 143-145 / 163-167 /
    179-183. The callback builds two payloads of 6 and 8 fields and pays the most.
    """

    __slots__ = ()

    purpose: ClassVar[str]
    lifetime: ClassVar[int]
    # In field order, for from_wire to build the payload with positional arguments (UpstreamState:
    # 1.6-2.5 µs against 3.3-3.8 with keywords, loaded machine); written in ``wire_order`` when set.
    wire_fields: ClassVar[tuple[WireField, ...]] = ()
    written_fields: ClassVar[tuple[WireField, ...]] = ()
    wire_order: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = _KINDS.get(cls.purpose, cls).__qualname__
        # ``slots=True`` makes the dataclass decorator build the class a second time (same name).
        if owner != cls.__qualname__:
            raise TypeError(f"{cls.__qualname__}: purpose {cls.purpose!r} is already {owner}'s")
        _KINDS[cls.purpose] = cls

    def to_wire(self) -> dict[str, Any]:
        """The JSON object that is signed, with its short keys.

        This loop and :meth:`from_wire`'s say what the mapping is; :func:`payload` gives each
        payload class the same two as straight-line code (:func:`_compile_wire_mapping`)."""
        wire: dict[str, Any] = {}
        for attr, key, _, _, write, omit in self.written_fields:
            value = getattr(self, attr)
            if omit is None or not omit(value):
                wire[key] = value if write is None else write(value)
        return wire

    @classmethod
    def from_wire(cls: type[P], wire: Any) -> P:
        """The payload a signed JSON value holds; any ``KeyError``, ``TypeError`` or
        ``ValueError`` means the value is malformed."""
        values: list[Any] = []
        for _, key, read, absent, _, _ in cls.wire_fields:
            value = wire.get(key, REQUIRED)
            if value is REQUIRED:
                if absent is REQUIRED:
                    raise KeyError(key)
                values.append(absent)
            else:
                values.append(read(value))
        return cls(*values)

    def seal(self, sealer: Sealer) -> str:
        """This payload, signed for its purpose: base64url and dots only."""
        return sealer.seal(self.purpose, self.to_wire())

    @classmethod
    def open(cls: type[P], sealer: Sealer, value: str, *, max_age: int) -> P:
        """The payload ``value`` carries, or :class:`SealError` (``reason`` says why not)."""
        return cls.open_timed(sealer, value, max_age=max_age)[0]

    @classmethod
    def open_timed(cls: type[P], sealer: Sealer, value: str, *, max_age: int) -> tuple[P, float]:
        """The payload and when it was sealed (a POSIX timestamp)."""
        wire, signed_at = sealer.unseal_timed(cls.purpose, value, max_age=max_age)
        try:
            return cls.from_wire(wire), signed_at
        except _SHAPE_ERRORS:
            raise SealError("malformed") from None


def payload_kinds() -> dict[str, type[SealedPayload]]:
    """Every payload class, by purpose."""
    return dict(_KINDS)


def wire(
    key: str,
    read: Callable[[Any], Any] = _text,
    *,
    absent: Any = REQUIRED,
    write: Callable[[Any], Any] | None = None,
    omit: Callable[[Any], bool] | None = None,
    default: Any = MISSING,
) -> Any:
    """A payload field that travels as :class:`WireField` ``(key, read, absent, write, omit)``;
    ``default`` is the constructor's default."""
    return field(default=default, metadata={"wire": (key, read, absent, write, omit)})


@dataclass_transform(field_specifiers=(wire,))
def payload(cls: type[P]) -> type[P]:
    """A payload class made a ``slots`` dataclass, with ``wire_fields`` from its :func:`wire`
    fields and its wire mapping compiled (:func:`_compile_wire_mapping`)."""
    cls = dataclass(slots=True)(cls)
    cls.wire_fields = tuple(WireField(f.name, *f.metadata["wire"]) for f in fields(cls))  # type: ignore[arg-type]  # a dataclass now
    order = cls.wire_order
    cls.written_fields = tuple(sorted(cls.wire_fields, key=lambda w: order.index(w.key))) if order else cls.wire_fields
    from_wire, to_wire = _compile_wire_mapping(cls)
    # setattr: mypy refuses an assignment to a method.
    setattr(cls, "from_wire", classmethod(from_wire))  # noqa: B010
    setattr(cls, "to_wire", to_wire)  # noqa: B010
    return cls


def _compile_wire_mapping(cls: type[SealedPayload]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``from_wire`` and ``to_wire`` for ``cls`` as straight-line code, as ``dataclasses`` writes
    ``__init__``: the loops of :class:`SealedPayload` unrolled over its fields, each key a
    constant, each ``read``, ``write`` and ``omit`` a name bound to the field's own function.

    Every login and refresh opens and seals two or three payloads. Measured with ``timeit``
    (bench machine, µs): :class:`UpstreamState` read 1.57 against 0.71, written 1.12 against
    0.34; :class:`AuthorizationCode` 1.29 against 0.56 and 0.91 against 0.30.
    tests/unit/test_payloads.py checks that both give what the loops give, for every payload
    class, on well-formed and malformed values.
    """
    names: dict[str, Any] = {}
    arguments = []
    for i, field_ in enumerate(cls.wire_fields):
        names[f"read_{i}"] = field_.read
        value = f"read_{i}(wire[{field_.key!r}])"  # a missing key raises KeyError: malformed
        if field_.absent is not REQUIRED:
            names[f"absent_{i}"] = field_.absent
            value = f"{value} if {field_.key!r} in wire else absent_{i}"
        arguments.append(f"        {value},\n")
    from_wire = "def from_wire(cls, wire):\n    return cls(\n" + "".join(arguments) + "    )\n"
    lines = ["def to_wire(self):", "    wire = {}"]
    for i, field_ in enumerate(cls.written_fields):
        attribute = f"self.{field_.attr}"
        written = attribute
        if field_.write is not None:
            names[f"write_{i}"] = field_.write
            written = f"write_{i}({attribute})"
        if field_.omit is None:
            lines.append(f"    wire[{field_.key!r}] = {written}")
        else:
            names[f"omit_{i}"] = field_.omit
            lines += [f"    if not omit_{i}({attribute}):", f"        wire[{field_.key!r}] = {written}"]
    to_wire = "\n".join([*lines, "    return wire", ""])
    # The source holds only the class's own keys (repr-quoted) and attribute names, nothing
    # that comes from a request.
    exec(from_wire + to_wire, names)
    return names["from_wire"], names["to_wire"]


@payload
class ClientRegistration(SealedPayload):
    """A registered client, signed: the ``client_id`` itself (RFC 7591 §3.2.1), nothing stored.

    Wire: ``r`` redirect URIs, ``t`` application type, ``n`` client name and ``u`` client URI
    (both only when set).
    """

    purpose: ClassVar[str] = sealing.CLIENT
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.client_id

    redirect_uris: tuple[str, ...] = wire("r", _text_tuple, write=list)
    application_type: str = wire("t", _application_type, absent="native", default="native")
    client_name: str | None = wire("n", _optional_text, absent=None, omit=operator.not_, default=None)
    client_uri: str | None = wire("u", _optional_text, absent=None, omit=operator.not_, default=None)


@payload
class ConsentTicket(SealedPayload):
    """A validated authorization request (RFC 6749 §4.1.1), waiting for the person's decision.

    Rendered into the consent form; bound to the browser's CSRF cookie by ``csrf_digest``.
    Wire: ``c`` client fingerprint, ``r`` redirect URI, ``cc`` PKCE S256 challenge, ``sc``
    scope, ``rg`` 0 when the redirect URI was not in the request (absent otherwise), ``s`` the
    client's state and ``f`` the forwarded login-page hints (both only when present), ``x``
    the CSRF digest.
    """

    purpose: ClassVar[str] = sealing.CONSENT
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.consent
    wire_order: ClassVar[tuple[str, ...]] = ("c", "r", "cc", "sc", "rg", "s", "f", "x")

    client_fingerprint: str = wire("c")
    redirect_uri: str = wire("r")
    redirect_uri_given: bool = wire("rg", _flag, absent=True, write=int, omit=bool)
    client_state: str | None = wire("s", _optional_text, absent=None, omit=_is_none)
    code_challenge: str = wire("cc")
    scope: str = wire("sc")
    forwarded_params: Mapping[str, str] = wire("f", _text_map, absent=_NO_PARAMS, write=dict, omit=operator.not_)
    csrf_digest: str = wire("x", absent="")


# The fields of the approved request that the state carries on from the consent ticket.
_APPROVED_REQUEST = ("client_fingerprint", "redirect_uri", "redirect_uri_given", "client_state", "code_challenge", "scope")


@payload
class UpstreamState(SealedPayload):
    """The ``state`` the shim sends the IdP (RFC 6749 §4.1.1): the approved request, bound to
    the browser that approved it.

    ``browser_binding_digest`` is the digest of the flow cookie set on approval, whose name
    ends in ``flow_id``. Wire: ``c``, ``r``, ``rg`` (always, 0 or 1), ``s`` (always, null when
    the client sent none), ``cc``, ``sc`` as in :class:`ConsentTicket`; ``b`` the binding
    digest, ``fl`` the flow id; ``n`` the OpenID Connect ``nonce`` sent to the IdP (issued-token
    mode with identity from the ID token; absent otherwise).
    """

    purpose: ClassVar[str] = sealing.STATE
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.state

    client_fingerprint: str = wire("c")
    redirect_uri: str = wire("r")
    redirect_uri_given: bool = wire("rg", _flag, absent=True, write=int)
    client_state: str | None = wire("s", _optional_text, absent=None)
    code_challenge: str = wire("cc")
    scope: str = wire("sc")
    browser_binding_digest: str = wire("b", absent="")
    flow_id: str = wire("fl", absent="")
    nonce: str | None = wire("n", _optional_text, absent=None, omit=_is_none, default=None)

    @classmethod
    def approved(
        cls, ticket: ConsentTicket, *, browser_binding_digest: str, flow_id: str, nonce: str | None = None
    ) -> UpstreamState:
        """The state for the IdP once the person approved ``ticket``: its request fields, by name."""
        request = {name: getattr(ticket, name) for name in _APPROVED_REQUEST}
        return cls(**request, browser_binding_digest=browser_binding_digest, flow_id=flow_id, nonce=nonce)


@payload
class AuthorizationCode(SealedPayload):
    """The code the client gets (RFC 6749 §4.1.2): the IdP's code, wrapped with everything the
    token endpoint checks (RFC 6749 §4.1.3, RFC 7636 §4.6).

    Wire: ``u`` the IdP's code, ``c`` client fingerprint, ``r`` redirect URI, ``rg`` 1 when the
    redirect URI was in the authorization request (0 otherwise), ``cc`` the PKCE challenge,
    ``sc`` the scope, ``n`` the ``nonce`` sent to the IdP (only when one was).
    """

    purpose: ClassVar[str] = sealing.CODE
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.code

    upstream_code: str = wire("u")
    client_fingerprint: str = wire("c")
    redirect_uri: str = wire("r")
    redirect_uri_given: bool = wire("rg", _flag, absent=True, write=int)
    code_challenge: str = wire("cc")
    scope: str = wire("sc")
    nonce: str | None = wire("n", _optional_text, absent=None, omit=_is_none, default=None)

    @classmethod
    def wrapping(cls, upstream_code: str, state: UpstreamState) -> AuthorizationCode:
        """The client's code for the IdP's ``upstream_code``, answering ``state``."""
        return cls(
            upstream_code,
            state.client_fingerprint,
            state.redirect_uri,
            state.redirect_uri_given,
            state.code_challenge,
            state.scope,
            state.nonce,
        )


@payload
class RefreshToken(SealedPayload):
    """The refresh token the client gets (RFC 6749 §6): the IdP's, bound to the client.

    Wire: ``u`` the IdP's refresh token, ``c`` client fingerprint, ``sc`` the granted scope
    (empty when neither the shim nor the IdP named one); in strict mode also ``fm`` the token
    family (one per login: every token rotated from it shares it) and ``id`` this token's own
    id, for reuse detection (RFC 9700 §4.14.2). Both are absent from tokens sealed without
    strict mode, and from those sealed by earlier versions, which still open; they go together
    (:class:`.strict.checks.RefreshLineage` gives both), and a value with one of them is malformed.
    """

    purpose: ClassVar[str] = sealing.REFRESH
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.refresh_token

    upstream_refresh_token: str = wire("u")
    client_fingerprint: str = wire("c")
    scope: str = wire("sc", absent="", default="")
    family: str | None = wire("fm", _optional_text, absent=None, omit=_is_none, default=None)
    token_id: str | None = wire("id", _optional_text, absent=None, omit=_is_none, default=None)

    def __post_init__(self) -> None:
        if (self.family is None) != (self.token_id is None):
            raise ValueError("a token family and a token id go together")
