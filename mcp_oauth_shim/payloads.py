"""The values the shim seals instead of storing: one dataclass per purpose.

The shim keeps no state between requests: whatever a later step needs travels with the
request, signed (:mod:`.sealing`). Each kind of value is a class here that owns

- its ``purpose``, the salt it is signed with, so a value minted for one purpose (a client_id)
  is never accepted as another (a code);
- its ``lifetime``, the default maximum age in seconds (operators override it through
  :class:`.context.Lifetimes`, whose defaults are these);
- its wire mapping, :meth:`SealedPayload.to_wire` and :meth:`SealedPayload.from_wire`. The wire
  keys are short because every value travels in URLs, forms and cookies; they never change, so
  values sealed by earlier versions keep opening.

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
``lifetime``, and write its two wire methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

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
    "payload_kinds",
]

P = TypeVar("P", bound="SealedPayload")

# Every purpose in use, to the qualified name of the class that owns it.
_PURPOSES: dict[str, str] = {}
_KINDS: dict[str, type[SealedPayload]] = {}

# What a validly signed value with the wrong shape raises while being read.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = _PURPOSES.setdefault(cls.purpose, cls.__qualname__)
        # ``slots=True`` makes the dataclass decorator build the class a second time.
        if owner != cls.__qualname__:
            raise TypeError(f"{cls.__qualname__}: purpose {cls.purpose!r} is already {owner}'s")
        _KINDS[cls.purpose] = cls

    def to_wire(self) -> dict[str, Any]:
        """The JSON object that is signed, with its short keys."""
        raise NotImplementedError

    @classmethod
    def from_wire(cls: type[P], wire: Any) -> P:
        """The payload a signed JSON value holds; any ``KeyError``, ``TypeError`` or
        ``ValueError`` means the value is malformed."""
        raise NotImplementedError

    def seal(self, sealer: Sealer) -> str:
        """This payload, signed for its purpose: base64url and dots only."""
        return sealer.seal(self.purpose, self.to_wire())

    @classmethod
    def open(cls: type[P], sealer: Sealer, value: str, *, max_age: int) -> P:
        """The payload ``value`` carries, or :class:`SealError` (``reason`` says why not)."""
        wire = sealer.unseal_timed(cls.purpose, value, max_age=max_age)[0]  # one call less than unseal()
        try:
            return cls.from_wire(wire)
        except _SHAPE_ERRORS:
            raise SealError("malformed") from None

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


@dataclass(slots=True)
class ClientRegistration(SealedPayload):
    """A registered client, signed: the ``client_id`` itself (RFC 7591 §3.2.1), nothing stored.

    Wire: ``r`` redirect URIs, ``t`` application type, ``n`` client name and ``u`` client URI
    (both only when set).
    """

    purpose: ClassVar[str] = sealing.CLIENT
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.client_id

    redirect_uris: tuple[str, ...]
    application_type: str = "native"
    client_name: str | None = None
    client_uri: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"r": list(self.redirect_uris), "t": self.application_type}
        if self.client_name:
            wire["n"] = self.client_name
        if self.client_uri:
            wire["u"] = self.client_uri
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> ClientRegistration:
        uris = wire["r"]
        if type(uris) is not list or not all(type(u) is str for u in uris):
            raise TypeError("redirect URIs must be a list of strings")
        return cls(
            redirect_uris=tuple(uris),
            application_type=_optional_text(wire.get("t")) or "native",
            client_name=_optional_text(wire.get("n")),
            client_uri=_optional_text(wire.get("u")),
        )


@dataclass(slots=True)
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

    client_fingerprint: str
    redirect_uri: str
    redirect_uri_given: bool
    client_state: str | None
    code_challenge: str
    scope: str
    forwarded_params: Mapping[str, str]
    csrf_digest: str

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "c": self.client_fingerprint,
            "r": self.redirect_uri,
            "cc": self.code_challenge,
            "sc": self.scope,
        }
        if not self.redirect_uri_given:
            wire["rg"] = 0
        if self.client_state is not None:
            wire["s"] = self.client_state
        if self.forwarded_params:
            wire["f"] = dict(self.forwarded_params)
        wire["x"] = self.csrf_digest
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> ConsentTicket:
        return cls(
            client_fingerprint=_text(wire["c"]),
            redirect_uri=_text(wire["r"]),
            redirect_uri_given=_flag(wire.get("rg", 1)),
            client_state=_optional_text(wire.get("s")),
            code_challenge=_text(wire["cc"]),
            scope=_text(wire["sc"]),
            forwarded_params=_text_map(wire.get("f", {})),
            csrf_digest=_text(wire.get("x", "")),
        )


@dataclass(slots=True)
class UpstreamState(SealedPayload):
    """The ``state`` the shim sends the IdP (RFC 6749 §4.1.1): the approved request, bound to
    the browser that approved it.

    ``browser_binding_digest`` is the digest of the flow cookie set on approval, whose name
    ends in ``flow_id``. Wire: ``c``, ``r``, ``rg`` (always, 0 or 1), ``s`` (always, null when
    the client sent none), ``cc``, ``sc`` as in :class:`ConsentTicket`; ``b`` the binding
    digest, ``fl`` the flow id.
    """

    purpose: ClassVar[str] = sealing.STATE
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.state

    client_fingerprint: str
    redirect_uri: str
    redirect_uri_given: bool
    client_state: str | None
    code_challenge: str
    scope: str
    browser_binding_digest: str
    flow_id: str

    @classmethod
    def approved(cls, ticket: ConsentTicket, *, browser_binding_digest: str, flow_id: str) -> UpstreamState:
        """The state for the IdP once the person approved ``ticket``."""
        return cls(
            ticket.client_fingerprint,
            ticket.redirect_uri,
            ticket.redirect_uri_given,
            ticket.client_state,
            ticket.code_challenge,
            ticket.scope,
            browser_binding_digest,
            flow_id,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "c": self.client_fingerprint,
            "r": self.redirect_uri,
            "rg": 1 if self.redirect_uri_given else 0,
            "s": self.client_state,
            "cc": self.code_challenge,
            "sc": self.scope,
            "b": self.browser_binding_digest,
            "fl": self.flow_id,
        }

    @classmethod
    def from_wire(cls, wire: Any) -> UpstreamState:
        return cls(
            client_fingerprint=_text(wire["c"]),
            redirect_uri=_text(wire["r"]),
            redirect_uri_given=_flag(wire.get("rg", 1)),
            client_state=_optional_text(wire.get("s")),
            code_challenge=_text(wire["cc"]),
            scope=_text(wire["sc"]),
            browser_binding_digest=_text(wire.get("b", "")),
            flow_id=_text(wire.get("fl", "")),
        )


@dataclass(slots=True)
class AuthorizationCode(SealedPayload):
    """The code the client gets (RFC 6749 §4.1.2): the IdP's code, wrapped with everything the
    token endpoint checks (RFC 6749 §4.1.3, RFC 7636 §4.6).

    Wire: ``u`` the IdP's code, ``c`` client fingerprint, ``r`` redirect URI, ``rg`` 1 when the
    redirect URI was in the authorization request (0 otherwise), ``cc`` the PKCE challenge,
    ``sc`` the scope.
    """

    purpose: ClassVar[str] = sealing.CODE
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.code

    upstream_code: str
    client_fingerprint: str
    redirect_uri: str
    redirect_uri_given: bool
    code_challenge: str
    scope: str

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
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "u": self.upstream_code,
            "c": self.client_fingerprint,
            "r": self.redirect_uri,
            "rg": 1 if self.redirect_uri_given else 0,
            "cc": self.code_challenge,
            "sc": self.scope,
        }

    @classmethod
    def from_wire(cls, wire: Any) -> AuthorizationCode:
        return cls(
            _text(wire["u"]),
            _text(wire["c"]),
            _text(wire["r"]),
            _flag(wire.get("rg", 1)),
            _text(wire["cc"]),
            _text(wire["sc"]),
        )


@dataclass(slots=True)
class RefreshToken(SealedPayload):
    """The refresh token the client gets (RFC 6749 §6): the IdP's, bound to the client.

    Wire: ``u`` the IdP's refresh token, ``c`` client fingerprint, ``sc`` the granted scope
    (empty when neither the shim nor the IdP named one); in strict mode also ``fm`` the token
    family (one per login: every token rotated from it shares it) and ``id`` this token's own
    id, for reuse detection (RFC 9700 §4.14.2). Both are absent from tokens sealed without
    strict mode, and from those sealed by earlier versions, which still open.
    """

    purpose: ClassVar[str] = sealing.REFRESH
    lifetime: ClassVar[int] = _DEFAULT_LIFETIMES.refresh_token

    upstream_refresh_token: str
    client_fingerprint: str
    scope: str = ""
    family: str | None = None
    token_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"u": self.upstream_refresh_token, "c": self.client_fingerprint, "sc": self.scope}
        if self.family is not None and self.token_id is not None:
            wire["fm"] = self.family
            wire["id"] = self.token_id
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> RefreshToken:
        family, token_id = _optional_text(wire.get("fm")), _optional_text(wire.get("id"))
        if (family is None) != (token_id is None):
            raise ValueError("a token family and a token id go together")
        return cls(_text(wire["u"]), _text(wire["c"]), _text(wire.get("sc", "")), family, token_id)
