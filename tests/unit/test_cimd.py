"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document): URL rules,
SSRF protection, response limits, document validation and caching."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mcp_oauth_shim.cimd import (
    ClientMetadataDocuments,
    ClientMetadataError,
    cache_lifetime,
    is_metadata_client_id,
    is_public_address,
)

CLIENT_ID = "https://client.example/oauth/metadata.json"
PUBLIC_IP = "93.184.216.34"


def document(client_id: str = CLIENT_ID, **overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "client_id": client_id,
        "client_name": "Example MCP Client",
        "client_uri": "https://client.example",
        "redirect_uris": ["http://127.0.0.1:3000/callback", "https://client.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def json_response(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **(headers or {})}
    )


class FakeResolver:
    """Answers from a table; records what it was asked."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = {"client.example": [PUBLIC_IP]} if answers is None else answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]


class Recorder:
    """A MockTransport handler that records requests and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    respond: Callable[[httpx.Request], httpx.Response] | None = None,
    *,
    resolver: FakeResolver | None = None,
    follow_redirects: bool = False,
    **kwargs: object,
) -> tuple[ClientMetadataDocuments, Recorder]:
    recorder = Recorder(respond or (lambda request: json_response(document())))
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder), follow_redirects=follow_redirects)
    docs = ClientMetadataDocuments(http=http, resolver=resolver or FakeResolver(), **kwargs)  # type: ignore[arg-type]
    return docs, recorder


def get(docs: ClientMetadataDocuments, client_id: str = CLIENT_ID):  # type: ignore[no-untyped-def]
    return asyncio.run(docs.get(client_id))


def refused(docs: ClientMetadataDocuments, client_id: str = CLIENT_ID) -> str:
    with pytest.raises(ClientMetadataError) as info:
        get(docs, client_id)
    assert info.value.error == "invalid_client"
    assert info.value.description.isascii()
    return info.value.description


# --- the client identifier URL (draft section 3) ---------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    [
        "https://client.example/oauth/metadata.json",
        "https://client.example:8443/client",
        "https://client.example/client?v=1",
        "https://xn--bcher-kva.example/c",
    ],
)
def test_valid_client_id_urls_are_recognised(client_id: str) -> None:
    assert is_metadata_client_id(client_id)


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("http://client.example/metadata.json", "https"),
        ("HTTPS://client.example/metadata.json", "https"),
        ("ftp://client.example/metadata.json", "https"),
        ("client.example/metadata.json", "https"),
        ("https://client.example", "path"),
        ("https://client.example/", "path"),
        ("https://client.example/a/../metadata.json", "'..'"),
        ("https://client.example/./metadata.json", "'.'"),
        ("https://client.example/a/%2E%2E/metadata.json", "'..'"),
        ("https://client.example/metadata.json#frag", "fragment"),
        ("https://client.example/metadata.json#", "fragment"),
        ("https://user@client.example/metadata.json", "username"),
        ("https://user:pass@client.example/metadata.json", "username"),
        ("https://client.example@127.0.0.1/metadata.json", "username"),
        ("https://2130706433/metadata.json", "non-canonical"),
        ("https://0x7f000001/metadata.json", "non-canonical"),
        ("https://0177.0.0.1/metadata.json", "non-canonical"),
        ("https://0x7f.1/metadata.json", "non-canonical"),
        ("https://127.1/metadata.json", "non-canonical"),
        ("https://[fe80::1%25eth0]/metadata.json", "IPv6"),
        ("https://client.example:0/metadata.json", "port"),
        ("https://client.example:99999/metadata.json", "port"),
        ("https://client.example\\@evil.example/x", "backslash"),
        ("https://client example/x", "whitespace"),
        ("https://clïent.example/x", "non-ASCII"),
        ("https://client.example/" + "a" * 2000, "longer"),
        ("", "missing"),
    ],
)
def test_malformed_client_id_urls_are_refused_without_network(client_id: str, reason: str) -> None:
    assert not is_metadata_client_id(client_id)
    resolver = FakeResolver()
    docs, recorder = make(resolver=resolver)
    assert reason in refused(docs, client_id)
    assert recorder.requests == [] and resolver.calls == []


def test_opaque_client_ids_are_not_metadata_client_ids() -> None:
    assert not is_metadata_client_id("eyJyIjpbImh0dHA6Ly8xMjcuMC4wLjEvY2IiXX0.Zx1.abc")


def test_http_loopback_is_a_client_id_only_when_allowed() -> None:
    assert not is_metadata_client_id("http://127.0.0.1:8123/client.json")
    assert is_metadata_client_id("http://127.0.0.1:8123/client.json", allow_http_loopback=True)
    assert not is_metadata_client_id("http://client.example/client.json", allow_http_loopback=True)


# --- SSRF: where we may connect (draft section 8.6, RFC 6890) ----------------------------------

SPECIAL_USE = [
    "127.0.0.1",
    "127.53.0.9",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "2001::1",
]


@pytest.mark.parametrize("address", SPECIAL_USE)
def test_special_use_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC_IP, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", SPECIAL_USE)
def test_host_resolving_to_special_use_address_is_not_fetched(address: str) -> None:
    docs, recorder = make(resolver=FakeResolver({"client.example": [address]}))
    assert "special-use" in refused(docs)
    assert recorder.requests == []


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "::1"])
def test_host_with_any_special_use_answer_is_not_fetched(address: str) -> None:
    docs, recorder = make(resolver=FakeResolver({"client.example": [PUBLIC_IP, address]}))
    assert "special-use" in refused(docs)
    assert recorder.requests == []


def test_refusal_does_not_reveal_the_internal_address() -> None:
    docs, _ = make(resolver=FakeResolver({"client.example": ["10.20.30.40"]}))
    assert "10.20.30.40" not in refused(docs)


@pytest.mark.parametrize(
    "client_id",
    [
        "https://127.0.0.1/metadata.json",
        "https://10.1.2.3/metadata.json",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/metadata.json",
        "https://[::1]/metadata.json",
        "https://[::ffff:127.0.0.1]/metadata.json",
        "https://[::ffff:7f00:1]/metadata.json",
        "https://[fe80::1]/metadata.json",
    ],
)
def test_ip_literal_special_use_client_ids_are_not_fetched(client_id: str) -> None:
    resolver = FakeResolver()
    docs, recorder = make(resolver=resolver)
    assert "special-use" in refused(docs, client_id)
    assert recorder.requests == [] and resolver.calls == []


def test_localhost_name_is_not_fetched() -> None:
    docs, recorder = make(resolver=FakeResolver({"localhost": ["127.0.0.1"]}))
    assert "special-use" in refused(docs, "https://localhost/metadata.json")
    assert recorder.requests == []


def test_unresolvable_host_is_refused() -> None:
    docs, _ = make(resolver=FakeResolver({}))
    assert "could not be resolved" in refused(docs)


def test_empty_dns_answer_is_refused() -> None:
    docs, _ = make(resolver=FakeResolver({"client.example": []}))
    assert "could not be resolved" in refused(docs)


def test_connection_goes_to_the_checked_address_with_name_in_host_and_sni() -> None:
    docs, recorder = make()
    get(docs)
    (request,) = recorder.requests
    assert request.url.host == PUBLIC_IP
    assert request.url.path == "/oauth/metadata.json"
    assert request.headers["host"] == "client.example"
    assert request.extensions["sni_hostname"] == "client.example"


def test_host_header_keeps_an_explicit_port() -> None:
    client_id = "https://client.example:8443/c.json"
    docs, recorder = make(lambda request: json_response(document(client_id)))
    get(docs, client_id)
    assert recorder.requests[0].headers["host"] == "client.example:8443"
    assert recorder.requests[0].url.port == 8443


class RebindingResolver(FakeResolver):
    """Public on the first lookup, loopback afterwards (DNS rebinding)."""

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return [PUBLIC_IP] if len(self.calls) == 1 else ["127.0.0.1"]


def test_dns_rebinding_cannot_move_the_connection() -> None:
    resolver = RebindingResolver()
    docs, recorder = make(resolver=resolver)
    get(docs)
    assert resolver.calls == ["client.example"]
    assert [r.url.host for r in recorder.requests] == [PUBLIC_IP]


def test_http_is_refused_for_loopback_unless_allowed() -> None:
    docs, recorder = make()
    assert "https" in refused(docs, "http://127.0.0.1:9/client.json")
    assert recorder.requests == []


def test_allow_http_loopback_still_refuses_private_addresses() -> None:
    docs, recorder = make(resolver=FakeResolver({"client.example": ["10.0.0.1"]}), allow_http_loopback=True)
    assert "special-use" in refused(docs)
    assert recorder.requests == []


# --- the HTTP response (draft sections 4, 5, 8.7) ---------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(status: int) -> None:
    docs, recorder = make(
        lambda request: httpx.Response(status, headers={"location": "https://client.example/other.json"}),
        follow_redirects=True,
    )
    assert "redirect" in refused(docs)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [201, 204, 404, 500, 503])
def test_non_200_status_is_refused(status: int) -> None:
    docs, _ = make(lambda request: json_response(document(), status=status))
    assert f"HTTP {status}" in refused(docs)


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/javascript", "", "application/jsonx"])
def test_non_json_content_type_is_refused(content_type: str) -> None:
    docs, _ = make(
        lambda request: httpx.Response(200, content=json.dumps(document()).encode(), headers={"content-type": content_type})
    )
    assert "application/json" in refused(docs)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/client+json"]
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    docs, _ = make(
        lambda request: httpx.Response(200, content=json.dumps(document()).encode(), headers={"content-type": content_type})
    )
    assert get(docs).client_id == CLIENT_ID


async def _gzip_bytes() -> object:
    yield b"\x1f\x8b\x08\x00"


def test_compressed_body_is_refused() -> None:
    docs, recorder = make(
        lambda request: httpx.Response(
            200,
            content=_gzip_bytes(),  # type: ignore[arg-type]
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    )
    assert "uncompressed" in refused(docs)
    assert recorder.requests[0].headers["accept-encoding"] == "identity"


def test_declared_oversize_body_is_refused() -> None:
    big = document(client_name="x" * 100, padding="y" * 6000)
    docs, _ = make(lambda request: json_response(big))
    assert "larger than 5120 bytes" in refused(docs)


def test_streamed_oversize_body_is_refused_without_reading_it_all() -> None:
    produced: list[int] = []

    async def endless() -> object:
        while True:
            produced.append(1)
            yield b" " * 1024

    docs, _ = make(
        lambda request: httpx.Response(200, content=endless(), headers={"content-type": "application/json"}),  # type: ignore[arg-type]
    )
    assert "larger than" in refused(docs)
    assert len(produced) <= 6


def test_max_bytes_is_configurable() -> None:
    docs, _ = make(max_bytes=100)
    assert "larger than 100 bytes" in refused(docs)


def test_transport_failure_is_reported() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    docs, _ = make(fail)
    assert "Could not fetch" in refused(docs)


def test_slow_handler_hits_the_total_time_limit() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return json_response(document())

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    docs = ClientMetadataDocuments(http=http, resolver=FakeResolver(), timeout=0.2)
    assert "longer than 0.2 seconds" in refused(docs)


# --- the document (draft sections 4, 4.1) ------------------------------------------------------


def test_valid_document_is_returned() -> None:
    docs, _ = make()
    doc = get(docs)
    assert doc.client_id == CLIENT_ID
    assert doc.client_name == "Example MCP Client"
    assert doc.redirect_uris == ("http://127.0.0.1:3000/callback", "https://client.example/cb")
    assert doc.token_endpoint_auth_method == "none"
    assert doc.grant_types == ("authorization_code", "refresh_token")
    assert doc.host == "client.example"


def test_minimal_document_gets_defaults() -> None:
    # The minimum MCP requires of a document: client_id, client_name and redirect_uris.
    minimal = {"client_id": CLIENT_ID, "client_name": "Minimal", "redirect_uris": ["https://client.example/cb"]}
    docs, _ = make(lambda request: json_response(minimal))
    doc = get(docs)
    assert doc.client_name == "Minimal"
    assert doc.token_endpoint_auth_method == "none"
    assert doc.grant_types == ("authorization_code",)
    assert doc.response_types == ("code",)


def test_unknown_fields_are_ignored() -> None:
    docs, _ = make(lambda request: json_response(document(software_id="abc", contacts=["a@b.example"])))
    assert get(docs).client_id == CLIENT_ID


@pytest.mark.parametrize(
    "body", [b"not json", b"{", b"\xff\xfe", b"", b"[]", b'"https://client.example/oauth/metadata.json"', b"null"]
)
def test_non_json_object_body_is_refused(body: bytes) -> None:
    docs, _ = make(lambda request: httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    assert "JSON" in refused(docs)


@pytest.mark.parametrize(
    "claimed",
    [
        "https://client.example/oauth/metadata.json/",
        "https://CLIENT.example/oauth/metadata.json",
        "https://client.example:443/oauth/metadata.json",
        "https://other.example/oauth/metadata.json",
        "https://client.example/oauth/metadata.json?x",
        "",
        123,
    ],
)
def test_client_id_mismatch_is_refused(claimed: object) -> None:
    docs, _ = make(lambda request: json_response(document(claimed)))  # type: ignore[arg-type]
    assert "does not exactly equal" in refused(docs)


def test_missing_client_id_is_refused() -> None:
    body = document()
    del body["client_id"]
    docs, _ = make(lambda request: json_response(body))
    assert "no client_id" in refused(docs)


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "client_secret_jwt"])
def test_shared_secret_auth_methods_are_refused(method: str) -> None:
    docs, _ = make(lambda request: json_response(document(token_endpoint_auth_method=method)))
    assert "shared secret" in refused(docs)


@pytest.mark.parametrize("method", ["private_key_jwt", "tls_client_auth", 7])
def test_confidential_auth_methods_are_refused_as_unsupported(method: object) -> None:
    docs, _ = make(lambda request: json_response(document(token_endpoint_auth_method=method)))
    assert "only public clients" in refused(docs)


@pytest.mark.parametrize("field", ["client_secret", "client_secret_expires_at"])
def test_client_secret_fields_are_refused(field: str) -> None:
    docs, _ = make(lambda request: json_response(document(**{field: "s3cr3t"})))
    assert field in refused(docs)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"redirect_uris": None}, "redirect_uris"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": "https://client.example/cb"}, "redirect_uris"),
        ({"redirect_uris": [7]}, "redirect_uris"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect URI"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "redirect URI"),
        ({"grant_types": ["client_credentials"]}, "authorization_code"),
        ({"response_types": ["token"]}, "code"),
        ({"client_name": ["not", "a", "string"]}, "client_name"),
        ({"client_name": "n" * 500}, "client_name"),
        ({"logo_uri": "javascript:alert(1)"}, "logo_uri"),
        ({"client_uri": "http://client.example"}, "client_uri"),
        ({"application_type": "browser"}, "application_type"),
    ],
)
def test_invalid_document_fields_are_refused(overrides: dict[str, object], reason: str) -> None:
    docs, _ = make(lambda request: json_response(document(**overrides)))
    assert reason in refused(docs)


# --- caching (draft section 5.2, RFC 9111) -----------------------------------------------------


def counted(headers: dict[str, str] | None = None, body: object = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: json_response(body if body is not None else document(), headers=headers)


def fetches_after(seconds: float, headers: dict[str, str] | None, **kwargs: object) -> int:
    """How many fetches two gets ``seconds`` apart cause."""
    clock = Clock()
    docs, recorder = make(counted(headers), clock=clock, **kwargs)

    async def twice() -> None:
        await docs.get(CLIENT_ID)
        clock.now += seconds
        await docs.get(CLIENT_ID)

    asyncio.run(twice())
    return len(recorder.requests)


@pytest.mark.parametrize(
    ("headers", "seconds", "fetches"),
    [
        ({"cache-control": "max-age=600"}, 599, 1),
        ({"cache-control": "max-age=600"}, 601, 2),
        ({"cache-control": "public, max-age=600", "age": "500"}, 101, 2),
        ({"cache-control": "max-age=10"}, 59, 1),  # raised to min_cache_seconds (60)
        ({"cache-control": "no-store"}, 59, 1),  # min_cache_seconds applies
        ({"cache-control": "no-store"}, 61, 2),
        ({"cache-control": "max-age=999999999"}, 86399, 1),
        ({"cache-control": "max-age=999999999"}, 86401, 2),  # bounded by max_cache_seconds
        (None, 299, 1),  # default_cache_seconds (300)
        (None, 301, 2),
        ({"date": "Thu, 26 Nov 2026 10:00:00 GMT", "expires": "Thu, 26 Nov 2026 11:00:00 GMT"}, 3599, 1),
        ({"date": "Thu, 26 Nov 2026 10:00:00 GMT", "expires": "Thu, 26 Nov 2026 11:00:00 GMT"}, 3601, 2),
    ],
)
def test_cache_lifetime_follows_http_headers_within_bounds(
    headers: dict[str, str] | None, seconds: float, fetches: int
) -> None:
    assert fetches_after(seconds, headers) == fetches


def test_max_cache_seconds_is_configurable() -> None:
    assert fetches_after(
        120, {"cache-control": "max-age=3600"}, max_cache_seconds=100, default_cache_seconds=100
    ) == 2


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, None),
        ({"cache-control": "max-age=60"}, 60.0),
        ({"cache-control": 'max-age="60"'}, 60.0),
        ({"cache-control": "MAX-AGE=60, must-revalidate"}, 60.0),
        ({"cache-control": "max-age=60", "age": "90"}, 0.0),
        ({"cache-control": "max-age=abc"}, 0.0),
        ({"cache-control": "no-cache, max-age=60"}, 0.0),
        ({"cache-control": "max-age=60", "expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 60.0),
        ({"expires": "0"}, 0.0),
        ({"expires": "Thu, 26 Nov 2026 10:05:00 GMT", "date": "Thu, 26 Nov 2026 10:00:00 GMT"}, 300.0),
    ],
)
def test_cache_lifetime_parsing(headers: dict[str, str], lifetime: float | None) -> None:
    assert cache_lifetime(httpx.Headers(headers), now=0.0) == lifetime


def test_error_responses_are_not_cached() -> None:
    answers = iter([json_response({"error": "boom"}, status=500), json_response(document())])
    docs, recorder = make(lambda request: next(answers))

    async def twice() -> str:
        with pytest.raises(ClientMetadataError):
            await docs.get(CLIENT_ID)
        return (await docs.get(CLIENT_ID)).client_id

    assert asyncio.run(twice()) == CLIENT_ID
    assert len(recorder.requests) == 2


def test_invalid_documents_are_not_cached() -> None:
    answers = iter([json_response(document(redirect_uris=[])), json_response(document())])
    docs, recorder = make(lambda request: next(answers))

    async def twice() -> str:
        with pytest.raises(ClientMetadataError):
            await docs.get(CLIENT_ID)
        return (await docs.get(CLIENT_ID)).client_id

    assert asyncio.run(twice()) == CLIENT_ID
    assert len(recorder.requests) == 2


def test_cache_evicts_least_recently_used_beyond_cache_size() -> None:
    ids = [f"https://client.example/c{i}.json" for i in range(3)]
    docs, recorder = make(
        lambda request: json_response(document(f"https://client.example{request.url.path}")), cache_size=2
    )

    async def run() -> None:
        for client_id in [*ids, ids[2], ids[0]]:
            await docs.get(client_id)

    asyncio.run(run())
    assert [r.url.path for r in recorder.requests] == ["/c0.json", "/c1.json", "/c2.json", "/c0.json"]


def test_concurrent_requests_for_one_client_share_one_fetch() -> None:
    release = asyncio.Event()
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await release.wait()
        return json_response(document())

    docs = ClientMetadataDocuments(http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), resolver=FakeResolver())

    async def run() -> list[str]:
        waiting = [asyncio.create_task(docs.get(CLIENT_ID)) for _ in range(5)]
        await asyncio.sleep(0)
        while not calls:
            await asyncio.sleep(0.01)
        release.set()
        return [d.client_id for d in await asyncio.gather(*waiting)]

    assert asyncio.run(run()) == [CLIENT_ID] * 5
    assert len(calls) == 1


# --- real sockets on loopback (allow_http_loopback) ---------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen_hosts.append(self.headers.get("Host", ""))
        self.server.behaviour(self)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen_hosts: list[str] = []
        self.stop = threading.Event()
        self.behaviour: Callable[[_Handler], None] = lambda handler: None


@pytest.fixture
def loopback_server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _serve_document(client_id: str) -> Callable[[_Handler], None]:
    def behaviour(handler: _Handler) -> None:
        body = json.dumps(document(client_id)).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


def test_loopback_document_is_fetched_over_a_real_socket(loopback_server: _Server) -> None:
    client_id = f"http://127.0.0.1:{loopback_server.server_port}/client.json"
    loopback_server.behaviour = _serve_document(client_id)
    docs = ClientMetadataDocuments(allow_http_loopback=True)
    assert asyncio.run(docs.get(client_id)).client_id == client_id


def test_named_loopback_host_connects_to_the_resolved_address(loopback_server: _Server) -> None:
    client_id = f"http://localhost:{loopback_server.server_port}/client.json"
    loopback_server.behaviour = _serve_document(client_id)
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    docs = ClientMetadataDocuments(allow_http_loopback=True, resolver=resolver)
    assert asyncio.run(docs.get(client_id)).client_id == client_id
    assert loopback_server.seen_hosts == [f"localhost:{loopback_server.server_port}"]


def test_slow_body_hits_the_total_time_limit(loopback_server: _Server) -> None:
    def trickle(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        try:
            while not handler.server.stop.wait(0.05):  # type: ignore[attr-defined]
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:
            return  # the fetcher hung up, as it should

    loopback_server.behaviour = trickle
    client_id = f"http://127.0.0.1:{loopback_server.server_port}/client.json"
    docs = ClientMetadataDocuments(allow_http_loopback=True, timeout=0.5)
    assert "longer than 0.5 seconds" in refused(docs, client_id)


def test_real_redirect_is_not_followed(loopback_server: _Server) -> None:
    def redirect(handler: _Handler) -> None:
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{handler.server.server_port}/other.json")  # type: ignore[attr-defined]
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    loopback_server.behaviour = redirect
    client_id = f"http://127.0.0.1:{loopback_server.server_port}/client.json"
    docs = ClientMetadataDocuments(allow_http_loopback=True)
    assert "redirect" in refused(docs, client_id)
    assert len(loopback_server.seen_hosts) == 1


# --- TLS: the pinned connection still verifies the certificate for the name --------------------


def _self_signed(name: str, directory: object) -> tuple[str, str]:
    """A throwaway certificate for ``name`` and its key, as PEM files."""
    import datetime
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    base = Path(str(directory))
    cert_path, key_path = base / f"{name}.pem", base / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(loopback_server: _Server, tmp_path: object) -> Iterator[tuple[_Server, str]]:
    """The loopback server speaking TLS with a certificate for client.test; yields the CA file."""
    import ssl

    cert, key = _self_signed("client.test", tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    loopback_server.socket = context.wrap_socket(loopback_server.socket, server_side=True)
    yield loopback_server, cert


def _trusting(ca_file: str) -> httpx.AsyncClient:
    import ssl

    return httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file), trust_env=False)


def test_pinned_tls_connection_verifies_the_certificate_for_the_name(tls_server: tuple[_Server, str]) -> None:
    server, ca_file = tls_server
    client_id = f"https://client.test:{server.server_port}/client.json"
    server.behaviour = _serve_document(client_id)
    docs = ClientMetadataDocuments(
        http=_trusting(ca_file), allow_http_loopback=True, resolver=FakeResolver({"client.test": ["127.0.0.1"]})
    )
    assert asyncio.run(docs.get(client_id)).client_id == client_id
    assert server.seen_hosts == [f"client.test:{server.server_port}"]


def test_pinned_tls_connection_refuses_a_certificate_for_another_name(tls_server: tuple[_Server, str]) -> None:
    server, ca_file = tls_server
    client_id = f"https://other.test:{server.server_port}/client.json"
    server.behaviour = _serve_document(client_id)
    docs = ClientMetadataDocuments(
        http=_trusting(ca_file), allow_http_loopback=True, resolver=FakeResolver({"other.test": ["127.0.0.1"]})
    )
    assert "Could not fetch" in refused(docs, client_id)
    assert server.seen_hosts == []
