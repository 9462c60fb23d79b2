"""RequireBearer: the ASGI guard in front of an MCP server (RFC 6750 §2.1 / §3, RFC 9728 §5.1)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim.config import Upstream
from mcp_oauth_shim.protect import RequireBearer
from mcp_oauth_shim.upstream import UpstreamClient
from mcp_oauth_shim.verify import BearerVerifier

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
AUDIENCE = "https://api.example.com/mcp"
PRM = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Idp:
    def __init__(self) -> None:
        self.jwks_mode = "ok"

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": ISSUER + "authorize",
                    "token_endpoint": ISSUER + "token",
                    "jwks_uri": ISSUER + "jwks",
                },
            )
        if self.jwks_mode == "down":
            raise httpx.ConnectError("refused", request=request)
        if self.jwks_mode == "slow":
            raise httpx.ReadTimeout("slow", request=request)
        if self.jwks_mode == "garbage":
            return httpx.Response(200, content=b"\x00\x01 not json")
        return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})


def token(**overrides: Any) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": NOW + 3600,
        "iat": NOW,
        "scope": "openid files:read",
    }
    claims.update(overrides)
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in claims.items() if v is not None}, KEY)


class Recorder:
    """The protected app: records what it saw, including the SDK's access-token context."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.auth.middleware.auth_context import get_access_token

        current = get_access_token()
        self.calls.append({"scope": scope, "context_token": current})
        if scope["type"] == "http":
            body = json.dumps({"sub": current.subject if current else None}).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
async def verifier(idp: Idp) -> AsyncIterator[BearerVerifier]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    upstream = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="secret"), http=http)
    yield BearerVerifier(
        upstream,
        audience=AUDIENCE,
        resource_metadata_url=PRM,
        scopes_supported=["openid", "files:read", "files:write"],
        clock=lambda: float(NOW),
    )
    await http.aclose()


@pytest.fixture
def app() -> Recorder:
    return Recorder()


def client(guard: RequireBearer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="https://api.example.com")


async def test_missing_token_gets_401_with_metadata_and_scope_but_no_error(
    verifier: BearerVerifier, app: Recorder
) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{PRM}", scope="openid files:read files:write"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "invalid_token"
    assert app.calls == []


async def test_missing_token_challenge_names_the_required_scopes_when_there_are_some(
    verifier: BearerVerifier, app: Recorder
) -> None:
    async with client(RequireBearer(app, verifier, scopes=["files:write"])) as http:
        response = await http.post("/mcp")
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{PRM}", scope="files:write"'


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
async def test_no_bearer_credential_is_treated_as_no_token(
    verifier: BearerVerifier, app: Recorder, authorization: str
) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer a b", "Bearer a,b", 'Bearer "quoted"', "Bearer tok\ten", "Bearer a=b"],
)
async def test_a_malformed_bearer_header_is_invalid_request(
    verifier: BearerVerifier, app: Recorder, authorization: str
) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers={"Authorization": authorization})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    assert app.calls == []


async def test_two_authorization_headers_are_invalid_request(verifier: BearerVerifier, app: Recorder) -> None:
    headers = [("Authorization", f"Bearer {token()}"), ("Authorization", "Bearer other")]
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers=headers)
    assert response.status_code == 400
    assert app.calls == []


@pytest.mark.parametrize(
    ("bad", "description"),
    [
        (
            token(aud="https://other.example.com/mcp"),
            "The access token was not issued for this resource (audience mismatch).",
        ),
        (
            token(iss="https://evil.example.com/"),
            "The access token was issued by another issuer than this resource trusts.",
        ),
        (token(exp=NOW - 3600), "The access token has expired."),
    ],
    ids=["another-audience", "another-issuer", "expired"],
)
async def test_a_refused_token_gets_401_invalid_token_with_the_reason(
    verifier: BearerVerifier, app: Recorder, bad: str, description: str
) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{PRM}", error="invalid_token", error_description="{description}", '
        'scope="openid files:read files:write"'
    )
    assert response.json() == {"error": "invalid_token", "error_description": description}
    assert app.calls == []


async def test_missing_scopes_get_403_insufficient_scope_naming_them(verifier: BearerVerifier, app: Recorder) -> None:
    async with client(RequireBearer(app, verifier, scopes=["files:read", "files:write"])) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{PRM}", error="insufficient_scope", '
        'error_description="The access token lacks required scopes: files:write", scope="files:read files:write"'
    )
    assert response.json()["scope"] == "files:read files:write"
    assert app.calls == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_a_valid_token_reaches_the_app_as_the_sdk_user(
    verifier: BearerVerifier, app: Recorder, scheme: str
) -> None:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from starlette.authentication import AuthCredentials

    good = token()
    async with client(RequireBearer(app, verifier, scopes=["files:read"])) as http:
        response = await http.post("/mcp", headers={"Authorization": f"{scheme} {good}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}
    seen = app.calls[0]
    user = seen["scope"]["user"]
    assert isinstance(user, AuthenticatedUser)
    assert user.access_token.token == good and user.username == "unknown"
    assert isinstance(seen["scope"]["auth"], AuthCredentials)
    assert seen["scope"]["auth"].scopes == ["openid", "files:read"]
    assert seen["context_token"] is user.access_token


async def test_the_sdk_context_is_reset_after_the_call(verifier: BearerVerifier, app: Recorder) -> None:
    from mcp.server.auth.middleware.auth_context import get_access_token

    async with client(RequireBearer(app, verifier)) as http:
        await http.post("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert get_access_token() is None


# -- a repeated token: answered from the verifier's memory, with every check of a first one ----


async def send_twice(guard: RequireBearer, bearer: str) -> list[httpx.Response]:
    async with client(guard) as http:
        return [await http.post("/mcp", headers={"Authorization": f"Bearer {bearer}"}) for _ in range(2)]


async def test_a_repeated_token_reaches_the_app_as_the_sdk_user_of_its_verified_token(
    verifier: BearerVerifier, app: Recorder
) -> None:
    good = token()
    first, second = await send_twice(RequireBearer(app, verifier), good)
    assert first.status_code == second.status_code == 200
    users = [seen["scope"]["user"] for seen in app.calls]
    assert users[0].access_token is users[1].access_token is verifier.remembered(good)
    assert app.calls[1]["context_token"] is users[1].access_token
    assert app.calls[1]["scope"]["auth"].scopes == ["openid", "files:read"]


async def test_each_request_gets_its_own_user_and_credentials(verifier: BearerVerifier, app: Recorder) -> None:
    await send_twice(RequireBearer(app, verifier), token())
    first, second = (seen["scope"] for seen in app.calls)
    assert first["user"] is not second["user"]
    assert first["auth"] is not second["auth"]


async def test_two_tokens_reach_the_app_as_two_users(verifier: BearerVerifier, app: Recorder) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        for subject in ("alice", "bob", "alice"):
            await http.post("/mcp", headers={"Authorization": f"Bearer {token(sub=subject)}"})
    assert [seen["scope"]["user"].access_token.subject for seen in app.calls] == ["alice", "bob", "alice"]


async def test_the_sdk_context_is_reset_after_a_repeated_call(verifier: BearerVerifier, app: Recorder) -> None:
    from mcp.server.auth.middleware.auth_context import get_access_token

    await send_twice(RequireBearer(app, verifier), token())
    assert app.calls[1]["context_token"] is not None
    assert get_access_token() is None


async def test_a_repeated_token_lacking_a_scope_another_guard_needs_gets_403(
    verifier: BearerVerifier, app: Recorder
) -> None:
    good = token()
    async with client(RequireBearer(app, verifier)) as http:
        assert (await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})).status_code == 200
    assert verifier.remembered(good) is not None
    async with client(RequireBearer(app, verifier, scopes=["files:write"])) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert len(app.calls) == 1


async def test_a_repeated_token_sent_twice_in_one_request_is_invalid_request(
    verifier: BearerVerifier, app: Recorder
) -> None:
    good = token()
    async with client(RequireBearer(app, verifier)) as http:
        await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})
        response = await http.post("/mcp", headers=[("Authorization", f"Bearer {good}")] * 2)
    assert response.status_code == 400
    assert len(app.calls) == 1


async def test_a_repeated_token_is_refused_once_it_has_expired(idp: Idp, app: Recorder) -> None:
    now = [float(NOW)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as upstream_http:
        upstream = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="secret"), http=upstream_http)
        verifier = BearerVerifier(upstream, audience=AUDIENCE, resource_metadata_url=PRM, leeway=0, clock=lambda: now[0])
        short_lived = token(exp=NOW + 60)
        async with client(RequireBearer(app, verifier)) as http:
            assert (await http.post("/mcp", headers={"Authorization": f"Bearer {short_lived}"})).status_code == 200
            now[0] += 61
            response = await http.post("/mcp", headers={"Authorization": f"Bearer {short_lived}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert len(app.calls) == 1


async def test_a_verifier_subclass_with_checks_of_its_own_decides_every_repeated_token(idp: Idp, app: Recorder) -> None:
    from mcp_oauth_shim.verify import InvalidToken

    class DenyList(BearerVerifier):
        denied: set[str] = set()

        async def authenticate(self, token: str, *, scopes: Iterable[str] = ()) -> Any:
            access = await super().authenticate(token, scopes=scopes)
            if access.subject in self.denied:
                raise InvalidToken("This user is blocked.")
            return access

    good = token()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as upstream_http:
        upstream = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="secret"), http=upstream_http)
        verifier = DenyList(upstream, audience=AUDIENCE, resource_metadata_url=PRM, clock=lambda: float(NOW))
        async with client(RequireBearer(app, verifier)) as http:
            assert (await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})).status_code == 200
            assert verifier.remembered(good) is not None
            DenyList.denied.add("alice")
            response = await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 401
    assert len(app.calls) == 1


class LongWayOnly(RequireBearer):
    """A guard whose own ``authenticate`` decides every request: the reference for the short way."""

    async def authenticate(self, scope: Scope) -> Any:
        return await super().authenticate(scope)


REMEMBERED = token()

# Spellings of an Authorization header around a token the verifier remembers.
HEADER_SPELLINGS = {
    "canonical": b"Bearer " + REMEMBERED.encode(),
    "lower-case scheme": b"bearer " + REMEMBERED.encode(),
    "upper-case scheme": b"BEARER " + REMEMBERED.encode(),
    "two spaces": b"Bearer  " + REMEMBERED.encode(),
    "leading space": b" Bearer " + REMEMBERED.encode(),
    "trailing space": b"Bearer " + REMEMBERED.encode() + b" ",
    "tab separator": b"Bearer\t" + REMEMBERED.encode(),
    "no separator": b"Bearer" + REMEMBERED.encode(),
    "token twice": b"Bearer " + REMEMBERED.encode() + b" " + REMEMBERED.encode(),
    "token with a suffix": b"Bearer " + REMEMBERED.encode() + b"x",
    "token with padding": b"Bearer " + REMEMBERED.encode() + b"==",
    "token cut short": b"Bearer " + REMEMBERED.encode()[:-1],
    "token with a latin-1 byte": b"Bearer " + REMEMBERED.encode() + b"\xff",
    "scheme only": b"Bearer ",
    "another scheme": b"Basic " + REMEMBERED.encode(),
}


@pytest.mark.parametrize("header", list(HEADER_SPELLINGS.values()), ids=list(HEADER_SPELLINGS))
async def test_a_remembered_token_gets_the_answer_of_the_long_way_in_any_spelling(
    verifier: BearerVerifier, app: Recorder, header: bytes
) -> None:
    await verifier.authenticate(REMEMBERED)
    answers = []
    for guard in (RequireBearer(app, verifier), LongWayOnly(app, verifier)):
        async with client(guard) as http:
            response = await http.post("/mcp", headers=[(b"Authorization", header)])
        answers.append((response.status_code, response.headers.get("www-authenticate"), response.content))
    assert answers[0] == answers[1]


async def second_answer_after(guard: RequireBearer, change: Callable[[], object]) -> httpx.Response:
    """One good token sent twice to ``guard``, ``change()`` in between: the second answer (the
    first must be a 200, so the verifier remembers the token)."""
    good = token()
    async with client(guard) as http:
        assert (await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})).status_code == 200
        change()
        return await http.post("/mcp", headers={"Authorization": f"Bearer {good}"})


async def test_a_guard_subclass_with_a_decision_of_its_own_decides_every_repeated_token(
    verifier: BearerVerifier, app: Recorder
) -> None:
    from mcp_oauth_shim.protect import BearerRefusal

    class Blocking(RequireBearer):
        blocked: bool = False

        async def authenticate(self, scope: Scope) -> Any:
            access = await super().authenticate(scope)
            if self.blocked:
                raise BearerRefusal(PlainTextResponse("blocked", status_code=403))
            return access

    guard = Blocking(app, verifier)
    response = await second_answer_after(guard, lambda: setattr(guard, "blocked", True))
    assert response.status_code == 403
    assert len(app.calls) == 1


async def test_an_authenticate_replaced_on_the_verifier_decides_every_repeated_token(
    verifier: BearerVerifier, app: Recorder
) -> None:
    from mcp_oauth_shim.verify import InvalidToken

    async def refuse_everyone(token: str, *, scopes: Iterable[str] = ()) -> Any:
        raise InvalidToken("Nobody today.")

    response = await second_answer_after(
        RequireBearer(app, verifier), lambda: setattr(verifier, "authenticate", refuse_everyone)
    )
    assert response.status_code == 401
    assert len(app.calls) == 1


async def test_an_authenticate_patched_on_the_verifier_class_decides_every_repeated_token(
    verifier: BearerVerifier, app: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_oauth_shim.verify import InvalidToken

    async def refuse_everyone(self: BearerVerifier, token: str, *, scopes: Iterable[str] = ()) -> Any:
        raise InvalidToken("Nobody today.")

    response = await second_answer_after(
        RequireBearer(app, verifier), lambda: monkeypatch.setattr(BearerVerifier, "authenticate", refuse_everyone)
    )
    assert response.status_code == 401
    assert len(app.calls) == 1


async def test_a_verifier_stand_in_is_asked_about_every_request(verifier: BearerVerifier, app: Recorder) -> None:
    class Logged:
        """Forwards everything to the real verifier (what a logging or metrics wrapper does)."""

        def __init__(self, inner: BearerVerifier) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    answers = await send_twice(RequireBearer(app, Logged(verifier)), token())  # type: ignore[arg-type]
    assert [answer.status_code for answer in answers] == [200, 200]


async def test_a_mock_verifier_made_with_spec_is_asked_about_every_request(verifier: BearerVerifier, app: Recorder) -> None:
    from unittest import mock

    double = mock.Mock(spec=BearerVerifier, wraps=verifier)  # passes isinstance(double, BearerVerifier)
    for name in ("required_scopes", "scopes_supported", "resource_metadata_url"):
        setattr(double, name, getattr(verifier, name))
    double.authenticate = mock.AsyncMock(wraps=verifier.authenticate)

    answers = await send_twice(RequireBearer(app, double), token())
    assert [answer.status_code for answer in answers] == [200, 200]
    assert double.authenticate.await_count == 2


async def test_a_jwt_with_an_unencoded_payload_is_refused(verifier: BearerVerifier, app: Recorder) -> None:
    from joserfc.jws import JWSRegistry
    from joserfc.util import urlsafe_b64encode

    # RFC 7797: "b64": false leaves the payload as raw JSON between the dots, signed by the IdP's key.
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 3600, "iat": NOW, "scope": "openid"}
    header = urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": "k1", "b64": False, "crit": ["b64"]}).encode())
    signing_input = header + b"." + json.dumps(claims).replace(".", "\\u002e").encode()
    signature = urlsafe_b64encode(JWSRegistry.algorithms["RS256"].sign(signing_input, KEY))
    unencoded = (signing_input + b"." + signature).decode()
    assert await verifier.verify_token(unencoded) is None
    assert verifier.remembered(unencoded) is None


async def test_required_scopes_raised_after_the_guard_was_built_apply_to_a_repeated_token(
    verifier: BearerVerifier, app: Recorder
) -> None:
    response = await second_answer_after(
        RequireBearer(app, verifier), lambda: setattr(verifier, "required_scopes", ("files:write",))
    )
    assert response.status_code == 403
    assert len(app.calls) == 1


async def test_sdk_bearer_backend_accepts_the_verifier(verifier: BearerVerifier) -> None:
    """The verifier plugs into the SDK's own auth stack as its TokenVerifier."""
    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
    from pydantic import AnyHttpUrl
    from starlette.requests import HTTPConnection

    backend = BearerAuthBackend(verifier, resource_server_url=AnyHttpUrl(AUDIENCE))
    good = HTTPConnection({"type": "http", "headers": [(b"authorization", f"Bearer {token()}".encode())]})
    bad = HTTPConnection({"type": "http", "headers": [(b"authorization", f"Bearer {token(aud='x')}".encode())]})
    result = await backend.authenticate(good)
    assert result is not None and result[1].access_token.subject == "alice"
    assert await backend.authenticate(bad) is None


@pytest.mark.parametrize(("mode", "status"), [("down", 502), ("slow", 504), ("garbage", 502)])
async def test_an_unreachable_idp_gives_502_or_504_json(
    verifier: BearerVerifier, app: Recorder, idp: Idp, mode: str, status: int
) -> None:
    idp.jwks_mode = mode
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "error_description"}
    assert app.calls == []


async def test_cors_preflight_passes_through_unauthenticated(verifier: BearerVerifier, app: Recorder) -> None:
    headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.options("/mcp", headers=headers)
    assert response.status_code == 200
    assert "user" not in app.calls[0]["scope"]


async def test_a_plain_options_request_still_needs_a_token(verifier: BearerVerifier, app: Recorder) -> None:
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.options("/mcp")
    assert response.status_code == 401


async def test_lifespan_passes_through_untouched(verifier: BearerVerifier, app: Recorder) -> None:
    scope_type = "lifespan"
    scope: dict[str, Any] = {"type": scope_type, "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": f"{scope_type}.startup"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("the guard must not answer")

    await RequireBearer(app, verifier)(scope, receive, send)
    assert app.calls[0]["scope"] is scope
    assert app.calls[0]["scope"] == {"type": scope_type, "headers": []}


async def websocket_answer(guard: RequireBearer, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """What the guard sends for a WebSocket connection with these headers."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "websocket", "headers": headers}, receive, send)
    return sent


async def test_a_websocket_without_a_token_is_closed_before_the_handshake(verifier: BearerVerifier, app: Recorder) -> None:
    assert await websocket_answer(RequireBearer(app, verifier), []) == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == []


class AnswersNone:
    """A verifier stand-in that answers None instead of raising: no token info, so no caller."""

    def __init__(self, inner: BearerVerifier) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def authenticate(self, token: str, *, scopes: Iterable[str] = ()) -> None:
        return None


async def test_a_verifier_stand_in_answering_none_refuses_the_token(verifier: BearerVerifier, app: Recorder) -> None:
    answers = await send_twice(RequireBearer(app, AnswersNone(verifier)), token())  # type: ignore[arg-type]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert 'error="invalid_token"' in answers[0].headers["www-authenticate"]
    assert app.calls == []


async def test_a_websocket_is_closed_when_a_verifier_stand_in_answers_none(verifier: BearerVerifier, app: Recorder) -> None:
    guard = RequireBearer(app, AnswersNone(verifier))  # type: ignore[arg-type]
    sent = await websocket_answer(guard, [(b"authorization", f"Bearer {token()}".encode())])
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == []


async def test_a_websocket_with_a_valid_token_reaches_the_app_as_the_sdk_user(
    verifier: BearerVerifier, app: Recorder
) -> None:
    assert await websocket_answer(RequireBearer(app, verifier), [(b"authorization", f"Bearer {token()}".encode())]) == []
    assert app.calls[0]["scope"]["user"].access_token.subject


async def test_a_starlette_app_with_lifespan_runs_behind_the_guard(verifier: BearerVerifier) -> None:
    """Lifespan events reach the wrapped app, so an MCP server's session manager starts."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    inner = Starlette(
        routes=[Route("/mcp", lambda r: PlainTextResponse(r.user.access_token.subject), methods=["POST"])],
        lifespan=lifespan,
    )
    guard = RequireBearer(inner, verifier)
    sent: list[dict[str, Any]] = []
    queue = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "lifespan", "state": {}}, receive, send)
    assert events == ["startup", "shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    async with client(guard) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert response.text == "alice"


async def test_header_injection_in_a_token_cannot_reach_the_challenge(verifier: BearerVerifier, app: Recorder) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k1\\"\\r\\nX: y"}').rstrip(b"=").decode()
    async with client(RequireBearer(app, verifier)) as http:
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {header}.e30.c2ln"})
    assert response.status_code == 401
    assert "X: y" not in response.headers["www-authenticate"]
    assert "x" not in {k.lower() for k in response.headers}


def _mcp_server_behind(verifier: BearerVerifier, *, stateless: bool) -> tuple[Any, RequireBearer]:
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("guarded")

    @server.tool()
    def whoami() -> str:
        """The subject of the caller's access token, as tools see it through the SDK."""
        current = get_access_token()
        return current.subject if current and current.subject else "nobody"

    inner = server.streamable_http_app(stateless_http=stateless, json_response=True)
    return server, RequireBearer(inner, verifier)


async def _call_whoami(http: httpx.AsyncClient, bearer: str, session_id: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {bearer}"}
    headers["MCP-Protocol-Version"] = "2025-06-18"
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return await http.post("/mcp", json=call, headers=headers)


async def _initialize(http: httpx.AsyncClient, bearer: str) -> str | None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {bearer}"}
    response = await http.post("/mcp", json=init, headers=headers)
    assert response.status_code == 200
    session_id = response.headers.get("mcp-session-id")
    headers["MCP-Protocol-Version"] = "2025-06-18"
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return session_id


@pytest.mark.parametrize("stateless", [True, False], ids=["stateless", "stateful"])
async def test_an_mcp_sdk_tool_sees_the_callers_token(idp: Idp, stateless: bool) -> None:
    """Behind the guard, the SDK's get_access_token() inside a tool returns the caller's token."""
    resource = "http://127.0.0.1:8000/mcp"
    http_idp = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    upstream = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="secret"), http=http_idp)
    verifier = BearerVerifier(upstream, audience=resource, resource_metadata_url=PRM, clock=lambda: float(NOW))
    server, guard = _mcp_server_behind(verifier, stateless=stateless)
    alice = token(aud=resource, sub="alice")
    async with server.session_manager.run():
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            session_id = await _initialize(http, alice)
            response = await _call_whoami(http, alice, session_id)
    await http_idp.aclose()
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"] == {"result": "alice"}


async def test_another_users_token_cannot_use_a_stateful_session(idp: Idp) -> None:
    """scope["user"] is what the SDK binds a session to its creator with."""
    resource = "http://127.0.0.1:8000/mcp"
    http_idp = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    upstream = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="secret"), http=http_idp)
    verifier = BearerVerifier(upstream, audience=resource, resource_metadata_url=PRM, clock=lambda: float(NOW))
    server, guard = _mcp_server_behind(verifier, stateless=False)
    async with server.session_manager.run():
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            session_id = await _initialize(http, token(aud=resource, sub="alice"))
            response = await _call_whoami(http, token(aud=resource, sub="mallory"), session_id)
    await http_idp.aclose()
    assert session_id
    assert response.status_code == 404
