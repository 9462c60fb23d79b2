"""Named sealed payloads: the same wire as before they had names, each kind round-trips, and a
validly signed value of the wrong shape is refused as malformed, never a crash.

The golden values below were sealed by the shim before its payloads became dataclasses (the
dict-building code of the registration, consent, callback and token endpoints at that time),
with ``GOLDEN_KEY``. They must keep opening, and sealing what they hold again in the same
second must give the very same string: client_ids, codes, states and refresh tokens in flight
during an upgrade stay valid.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from mcp_oauth_shim import sealing
from mcp_oauth_shim.context import Lifetimes
from mcp_oauth_shim.payloads import (
    _SHAPE_ERRORS,
    AuthorizationCode,
    ClientRegistration,
    ConsentTicket,
    RefreshToken,
    SealedPayload,
    UpstreamState,
    payload_kinds,
)
from mcp_oauth_shim.sealing import Sealer, SealError

GOLDEN_KEY = "golden-key-for-sealed-payload-compatibility-tests-0001"
FOREVER = 10**10
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

GOLDEN = [
    pytest.param(
        ClientRegistration,
        "eyJyIjpbImh0dHA6Ly8xMjcuMC4wLjE6MzM0MTgvY2FsbGJhY2siLCJodHRwczovL2FwcC5leGFtcGxlL2NiIl0sInQiOiJ3ZWIiLCJuIjoiR29sZGVuIEFwcCIsInUiOiJodHRwczovL2FwcC5leGFtcGxlLyJ9.axLq4g.7KuwDXsTiItboE3stGkPfIFw_M3-JD1cOjN51WJytKI",
        {"r": ["http://127.0.0.1:33418/callback", "https://app.example/cb"], "t": "web", "n": "Golden App", "u": "https://app.example/"},
        id="client_full",
    ),
    pytest.param(
        ClientRegistration,
        "eyJyIjpbImh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiJdLCJ0IjoibmF0aXZlIn0.axLq4g.ndTUtoxgnBH6GLk4GHcGyGnCMPwPz5DiI8oM_5DRKB4",
        {"r": ["http://localhost:8080/cb"], "t": "native"},
        id="client_min",
    ),
    pytest.param(
        ConsentTicket,
        "eyJjIjoib0NWUHVOWDJISk9xNjBWVmphM01VOGJOIiwiciI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiIsImNjIjoiRTlNZWxob2EyT3d2RnJFTVRKZ3VDSGFvZUsxdDhVUldidUdKU3N0dy1jTSIsInNjIjoib3BlbmlkIGVtYWlsIiwicmciOjAsInMiOiJjbGllbnQtc3RhdGUtMSIsImYiOnsibG9naW5faGludCI6ImFAYi5jIiwicHJvbXB0IjoibG9naW4ifSwieCI6IkZRX0dnSDEyWGVmS0pJM3Y4OUVlLWZJVCJ9.axLq4g.AOmuapRi30z-jfE2a-iho2FplVlHU39AxfqxqfoH-N8",
        {"c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email", "rg": 0, "s": "client-state-1", "f": {"login_hint": "a@b.c", "prompt": "login"}, "x": "FQ_GgH12XefKJI3v89Ee-fIT"},
        id="consent_full",
    ),
    pytest.param(
        ConsentTicket,
        "eyJjIjoib0NWUHVOWDJISk9xNjBWVmphM01VOGJOIiwiciI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiIsImNjIjoiRTlNZWxob2EyT3d2RnJFTVRKZ3VDSGFvZUsxdDhVUldidUdKU3N0dy1jTSIsInNjIjoib3BlbmlkIGVtYWlsIiwieCI6IkZRX0dnSDEyWGVmS0pJM3Y4OUVlLWZJVCJ9.axLq4g.v2RTqe7YNTEn3FzBlkDfUb7QkYzl0Q4LifBycukLgxY",
        {"c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email", "x": "FQ_GgH12XefKJI3v89Ee-fIT"},
        id="consent_min",
    ),
    pytest.param(
        UpstreamState,
        "eyJjIjoib0NWUHVOWDJISk9xNjBWVmphM01VOGJOIiwiciI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiIsInJnIjowLCJzIjoiY2xpZW50LXN0YXRlLTEiLCJjYyI6IkU5TWVsaG9hMk93dkZyRU1USmd1Q0hhb2VLMXQ4VVJXYnVHSlNzdHctY00iLCJzYyI6Im9wZW5pZCBlbWFpbCIsImIiOiJCeXdHcll1d1lRZlQtQWQ3N3dndm9ybHciLCJmbCI6ImZsb3cwMSJ9.axLq4g.Xiy__3dMYzRWF7yOh5jU9VV3Eyqz_VaprmmcgvNMvoo",
        {"c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "rg": 0, "s": "client-state-1", "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email", "b": "BywGrYuwYQfT-Ad77wgvorlw", "fl": "flow01"},
        id="state_full",
    ),
    pytest.param(
        UpstreamState,
        "eyJjIjoib0NWUHVOWDJISk9xNjBWVmphM01VOGJOIiwiciI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiIsInJnIjoxLCJzIjpudWxsLCJjYyI6IkU5TWVsaG9hMk93dkZyRU1USmd1Q0hhb2VLMXQ4VVJXYnVHSlNzdHctY00iLCJzYyI6Im9wZW5pZCBlbWFpbCIsImIiOiJCeXdHcll1d1lRZlQtQWQ3N3dndm9ybHciLCJmbCI6ImZsb3cwMSJ9.axLq4g.w4hFenRdFZiVUNrEztYo7LXHp-18VlprnHmjFwvyVYw",
        {"c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "rg": 1, "s": None, "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email", "b": "BywGrYuwYQfT-Ad77wgvorlw", "fl": "flow01"},
        id="state_min",
    ),
    pytest.param(
        AuthorizationCode,
        "eyJ1IjoiaWRwLWNvZGUtY29kZV9ub3RfZ2l2ZW4iLCJjIjoib0NWUHVOWDJISk9xNjBWVmphM01VOGJOIiwiciI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MC9jYiIsInJnIjowLCJjYyI6IkU5TWVsaG9hMk93dkZyRU1USmd1Q0hhb2VLMXQ4VVJXYnVHSlNzdHctY00iLCJzYyI6Im9wZW5pZCBlbWFpbCJ9.axLq4g.HsxLAv8_-LbS2RUgpsBLSYIRo3QKK4GFdS0r5HDleZM",
        {"u": "idp-code-code_not_given", "c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "rg": 0, "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email"},
        id="code_not_given",
    ),
    pytest.param(
        AuthorizationCode,
        "eyJ1IjoiaWRwLWNvZGUtY29kZV9naXZlbiIsImMiOiJvQ1ZQdU5YMkhKT3E2MFZWamEzTVU4Yk4iLCJyIjoiaHR0cDovL2xvY2FsaG9zdDo4MDgwL2NiIiwicmciOjEsImNjIjoiRTlNZWxob2EyT3d2RnJFTVRKZ3VDSGFvZUsxdDhVUldidUdKU3N0dy1jTSIsInNjIjoib3BlbmlkIGVtYWlsIn0.axLq4g.zA-0w7jcr7QLwnMD6eqMj9XhD_197d2twBTu67WrzCw",
        {"u": "idp-code-code_given", "c": "oCVPuNX2HJOq60VVja3MU8bN", "r": "http://localhost:8080/cb", "rg": 1, "cc": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "sc": "openid email"},
        id="code_given",
    ),
    pytest.param(
        RefreshToken,
        "eyJ1IjoiaWRwLXJlZnJlc2gtdG9rZW4tMSIsImMiOiJvQ1ZQdU5YMkhKT3E2MFZWamEzTVU4Yk4iLCJzYyI6Im9wZW5pZCBlbWFpbCJ9.axLq4g.g1-WOXT6dW5jxz3da9Kq7miaywykz3uLXGyY2MxJHco",
        {"u": "idp-refresh-token-1", "c": "oCVPuNX2HJOq60VVja3MU8bN", "sc": "openid email"},
        id="refresh",
    ),
    pytest.param(
        RefreshToken,
        "eyJ1IjoiaWRwLXJlZnJlc2gtdG9rZW4tMiIsImMiOiJvQ1ZQdU5YMkhKT3E2MFZWamEzTVU4Yk4iLCJzYyI6IiJ9.axLq4g.8j8q-IxYzpnnK1rkKhcvm0oIeaBpZ7BkDwIf1YSx47o",
        {"u": "idp-refresh-token-2", "c": "oCVPuNX2HJOq60VVja3MU8bN", "sc": ""},
        id="refresh_no_scope",
    ),
]


def _signed_at(value: str) -> int:
    """The timestamp field of a sealed value: base64url of the big-endian POSIX seconds."""
    stamp = value.split(".")[1]
    return int.from_bytes(base64.urlsafe_b64decode(stamp + "=" * (-len(stamp) % 4)), "big")


@pytest.mark.parametrize(("kind", "golden", "wire"), GOLDEN)
def test_a_value_sealed_before_payloads_had_names_opens_with_the_same_wire(
    kind: type[SealedPayload], golden: str, wire: dict[str, Any]
) -> None:
    payload = kind.open(Sealer([GOLDEN_KEY]), golden, max_age=FOREVER)
    assert list(payload.to_wire().items()) == list(wire.items())  # same keys, values and order


@pytest.mark.parametrize(("kind", "golden", "wire"), GOLDEN)
def test_resealing_a_golden_value_in_its_second_gives_the_same_string(
    kind: type[SealedPayload], golden: str, wire: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = kind.open(Sealer([GOLDEN_KEY]), golden, max_age=FOREVER)
    monkeypatch.setattr(time, "time", lambda: float(_signed_at(golden)))
    assert payload.seal(Sealer([GOLDEN_KEY])) == golden


@pytest.mark.parametrize(
    ("kind", "golden_id", "expected"),
    [
        (
            ClientRegistration,
            "client_full",
            ClientRegistration(
                redirect_uris=("http://127.0.0.1:33418/callback", "https://app.example/cb"),
                application_type="web",
                client_name="Golden App",
                client_uri="https://app.example/",
            ),
        ),
        (
            ConsentTicket,
            "consent_full",
            ConsentTicket(
                client_fingerprint="oCVPuNX2HJOq60VVja3MU8bN",
                redirect_uri="http://localhost:8080/cb",
                redirect_uri_given=False,
                client_state="client-state-1",
                code_challenge=CHALLENGE,
                scope="openid email",
                forwarded_params={"login_hint": "a@b.c", "prompt": "login"},
                csrf_digest="FQ_GgH12XefKJI3v89Ee-fIT",
            ),
        ),
        (
            UpstreamState,
            "state_min",
            UpstreamState(
                client_fingerprint="oCVPuNX2HJOq60VVja3MU8bN",
                redirect_uri="http://localhost:8080/cb",
                redirect_uri_given=True,
                client_state=None,
                code_challenge=CHALLENGE,
                scope="openid email",
                browser_binding_digest="BywGrYuwYQfT-Ad77wgvorlw",
                flow_id="flow01",
            ),
        ),
        (
            AuthorizationCode,
            "code_not_given",
            AuthorizationCode(
                upstream_code="idp-code-code_not_given",
                client_fingerprint="oCVPuNX2HJOq60VVja3MU8bN",
                redirect_uri="http://localhost:8080/cb",
                redirect_uri_given=False,
                code_challenge=CHALLENGE,
                scope="openid email",
            ),
        ),
        (
            RefreshToken,
            "refresh",
            RefreshToken(
                upstream_refresh_token="idp-refresh-token-1",
                client_fingerprint="oCVPuNX2HJOq60VVja3MU8bN",
                scope="openid email",
            ),
        ),
    ],
)
def test_a_golden_value_opens_into_named_fields(kind: type[SealedPayload], golden_id: str, expected: SealedPayload) -> None:
    golden = next(p.values[1] for p in GOLDEN if p.id == golden_id)
    assert kind.open(Sealer([GOLDEN_KEY]), golden, max_age=FOREVER) == expected


STATE = UpstreamState(
    client_fingerprint="fp",
    redirect_uri="http://127.0.0.1:5000/cb",
    redirect_uri_given=False,
    client_state="st",
    code_challenge=CHALLENGE,
    scope="openid",
    browser_binding_digest="bd",
    flow_id="fl",
)
TICKET = ConsentTicket(
    client_fingerprint="fp",
    redirect_uri="http://127.0.0.1:5000/cb",
    redirect_uri_given=True,
    client_state=None,
    code_challenge=CHALLENGE,
    scope="openid profile",
    forwarded_params={},
    csrf_digest="cd",
)


@pytest.mark.parametrize(
    "payload",
    [
        ClientRegistration(redirect_uris=("http://127.0.0.1:1/cb",)),
        ClientRegistration(("https://a.example/cb", "https://b.example/cb"), "web", "Name", "https://a.example/"),
        TICKET,
        ConsentTicket("fp", "https://a.example/cb", False, "s", CHALLENGE, "", {"prompt": "login"}, "cd"),
        STATE,
        UpstreamState.approved(TICKET, browser_binding_digest="bd", flow_id="fl"),
        AuthorizationCode.wrapping("upstream-code", STATE),
        RefreshToken("upstream-refresh", "fp", "openid"),
        RefreshToken("upstream-refresh", "fp"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_every_payload_opens_as_it_was_sealed(payload: SealedPayload) -> None:
    sealer = Sealer(["s" * 48])
    assert type(payload).open(sealer, payload.seal(sealer), max_age=60) == payload


def test_the_approved_state_and_its_code_carry_the_request_forward() -> None:
    state = UpstreamState.approved(TICKET, browser_binding_digest="bd", flow_id="fl")
    code = AuthorizationCode.wrapping("upstream-code", state)
    assert (state.client_fingerprint, state.redirect_uri, state.redirect_uri_given, state.code_challenge, state.scope) == (
        TICKET.client_fingerprint,
        TICKET.redirect_uri,
        TICKET.redirect_uri_given,
        TICKET.code_challenge,
        TICKET.scope,
    )
    assert (code.client_fingerprint, code.redirect_uri, code.redirect_uri_given, code.code_challenge, code.scope) == (
        state.client_fingerprint,
        state.redirect_uri,
        state.redirect_uri_given,
        state.code_challenge,
        state.scope,
    )


@pytest.mark.parametrize(
    ("kind", "wire", "field", "default"),
    [
        (AuthorizationCode, {"u": "x", "c": "fp", "r": "https://a.example/cb", "cc": CHALLENGE, "sc": ""}, "redirect_uri_given", True),
        (UpstreamState, {"c": "fp", "r": "https://a.example/cb", "cc": CHALLENGE, "sc": "", "b": "b", "fl": "f"}, "redirect_uri_given", True),
        (UpstreamState, {"c": "fp", "r": "https://a.example/cb", "cc": CHALLENGE, "sc": ""}, "flow_id", ""),
        (ConsentTicket, {"c": "fp", "r": "https://a.example/cb", "cc": CHALLENGE, "sc": ""}, "forwarded_params", {}),
        (RefreshToken, {"u": "x", "c": "fp"}, "scope", ""),
        (ClientRegistration, {"r": ["https://a.example/cb"]}, "application_type", "native"),
        (ClientRegistration, {"r": ["https://a.example/cb"], "t": ""}, "application_type", "native"),
    ],
)
def test_an_optional_key_left_out_reads_as_its_default(kind: type[SealedPayload], wire: dict[str, Any], field: str, default: object) -> None:
    sealer = Sealer(["s" * 48])
    assert getattr(kind.open(sealer, sealer.seal(kind.purpose, wire), max_age=60), field) == default


CODE_WIRE = {"u": "x", "c": "fp", "r": "https://a.example/cb", "rg": 1, "cc": CHALLENGE, "sc": "openid"}
STATE_WIRE = {**STATE.to_wire()}
TICKET_WIRE = {**TICKET.to_wire(), "s": "st", "f": {"prompt": "login"}}
REFRESH_WIRE = {"u": "x", "c": "fp", "sc": "openid"}
CLIENT_WIRE = {"r": ["https://a.example/cb"], "t": "web", "n": "N", "u": "https://a.example/"}


# For each kind: a well-formed wire value, its required keys, and per key values of a wrong type.
SHAPES: list[tuple[type[SealedPayload], dict[str, Any], set[str], dict[str, list[object]]]] = [
    (
        AuthorizationCode,
        CODE_WIRE,
        {"u", "c", "r", "cc", "sc"},
        {"u": [1, None], "c": [1, ["fp"]], "r": [None, {}], "rg": ["1", None, 1.5], "cc": [1], "sc": [["openid"], None]},
    ),
    (
        UpstreamState,
        STATE_WIRE,
        {"c", "r", "cc", "sc"},
        {"c": [None], "r": [1], "rg": ["0"], "s": [1, ["st"]], "cc": [None], "sc": [1], "b": [1, None], "fl": [1, None]},
    ),
    (
        ConsentTicket,
        TICKET_WIRE,
        {"c", "r", "cc", "sc"},
        {"c": [1], "r": [None], "rg": ["0"], "s": [1], "cc": [[]], "sc": [None], "f": ["login", {"prompt": 1}, [1]], "x": [1, None]},
    ),
    (RefreshToken, REFRESH_WIRE, {"u", "c"}, {"u": [1, None], "c": [None, {}], "sc": [1, None]}),
    (
        ClientRegistration,
        CLIENT_WIRE,
        {"r"},
        {"r": ["https://a.example/cb", [1], None], "t": [1, ["web"]], "n": [1, {}], "u": [2, ["https://a.example/"]]},
    ),
]


def _cases() -> list[Any]:
    cases = []
    for kind, wire, required, wrong_types in SHAPES:
        variants: list[object] = [[], "text", 1, None, True, [wire]]
        variants += [{k: v for k, v in wire.items() if k != key} for key in sorted(required)]
        variants += [{**wire, key: wrong} for key, wrongs in wrong_types.items() for wrong in wrongs]
        cases += [pytest.param(kind, variant, id=f"{kind.__name__}-{n}") for n, variant in enumerate(variants)]
    return cases


@pytest.mark.parametrize(("kind", "wire"), _cases())
def test_a_validly_signed_value_of_the_wrong_shape_is_malformed(kind: type[SealedPayload], wire: object) -> None:
    sealer = Sealer(["s" * 48])
    with pytest.raises(SealError) as refused:
        kind.open(sealer, sealer.seal(kind.purpose, wire), max_age=60)
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize("kind", list(payload_kinds().values()), ids=lambda k: k.__name__)
def test_a_payload_sealed_for_another_purpose_does_not_open(kind: type[SealedPayload]) -> None:
    sealer = Sealer(["s" * 48])
    for other in payload_kinds():
        if other != kind.purpose:
            with pytest.raises(SealError) as refused:
                kind.open(sealer, sealer.seal(other, {}), max_age=60)
            assert refused.value.reason == "invalid signature"


def test_every_payload_kind_has_its_own_purpose() -> None:
    kinds = payload_kinds()
    assert set(kinds) == {sealing.CLIENT, sealing.CONSENT, sealing.STATE, sealing.CODE, sealing.REFRESH}
    assert all(kind.purpose == purpose for purpose, kind in kinds.items())


def test_a_new_payload_may_not_reuse_a_purpose() -> None:
    with pytest.raises(TypeError, match="already"):

        class Impostor(SealedPayload):  # noqa: F841
            purpose = sealing.CODE
            lifetime = 1


def test_the_default_lifetimes_are_the_payloads_own() -> None:
    lifetimes = Lifetimes()
    assert (lifetimes.client_id, lifetimes.consent, lifetimes.state, lifetimes.code, lifetimes.refresh_token) == (
        ClientRegistration.lifetime,
        ConsentTicket.lifetime,
        UpstreamState.lifetime,
        AuthorizationCode.lifetime,
        RefreshToken.lifetime,
    )


# The wire mapping each payload class runs is compiled from its fields (``payloads.payload``);
# the loops of ``SealedPayload`` say what it must do. Both are compared on every value above.
_READ_BY_LOOPS = SealedPayload.__dict__["from_wire"].__func__
_WRITTEN_BY_LOOPS = SealedPayload.__dict__["to_wire"]


def _outcome(read: Any, kind: type[SealedPayload], wire: object) -> object:
    try:
        return read(kind, wire)
    except _SHAPE_ERRORS:
        return "malformed"


@pytest.mark.parametrize(("kind", "wire"), [*_cases(), *[pytest.param(kind, wire, id=f"{kind.__name__}-ok") for kind, wire, _, _ in SHAPES]])
def test_a_compiled_wire_reader_reads_what_the_loop_reads(kind: type[SealedPayload], wire: object) -> None:
    assert kind.__dict__["from_wire"].__func__ is not _READ_BY_LOOPS
    assert _outcome(kind.__dict__["from_wire"].__func__, kind, wire) == _outcome(_READ_BY_LOOPS, kind, wire)


@pytest.mark.parametrize(
    "payload",
    [
        ClientRegistration(redirect_uris=("http://127.0.0.1:1/cb",)),
        ClientRegistration(("https://a.example/cb",), "web", "Name", "https://a.example/"),
        TICKET,
        ConsentTicket("fp", "https://a.example/cb", False, "s", CHALLENGE, "", {"prompt": "login"}, "cd"),
        STATE,
        UpstreamState.approved(TICKET, browser_binding_digest="bd", flow_id="fl", nonce="n-1"),
        AuthorizationCode.wrapping("upstream-code", STATE),
        RefreshToken("upstream-refresh", "fp", "openid", "family", "token-id"),
        RefreshToken("upstream-refresh", "fp"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_a_compiled_wire_writer_writes_what_the_loop_writes_in_its_order(payload: SealedPayload) -> None:
    assert type(payload).__dict__["to_wire"] is not _WRITTEN_BY_LOOPS
    written, by_loops = payload.to_wire(), _WRITTEN_BY_LOOPS(payload)
    assert list(written.items()) == list(by_loops.items())
