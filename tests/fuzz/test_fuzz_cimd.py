"""URL client_ids (client ID metadata documents) whose URL, DNS answer and document server
answer are arbitrary: status, headers, media type, body.

Properties at ``GET /oauth/authorize``: a consent page, an HTML error page, or a redirect to a
redirect URI the fetched document itself lists; never a 5xx; the document server is never
asked at a private or special-use address (SSRF, draft §8.6) and never twice for one request
(no redirects followed); no secret in answers or logs.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .properties import assert_html_error_page, assert_no_server_error, assert_nothing_leaks, assert_redirect_only_to, captured_logs
from .setups import CIMD_CLIENT_ID, CLIENT_REDIRECT, PUBLIC_ADDRESS, DocumentServer, FuzzKit, build_kit, cimd_document, pkce_pair
from .strategies import FUZZ, header_values, hostile_text, hostile_urls

_, CHALLENGE = pkce_pair()
LOOPBACK_ID = "http://127.0.0.1:9911/oauth/client.json"


@pytest.fixture(scope="module")
def kit() -> FuzzKit:
    return build_kit(documents=DocumentServer())


client_ids = st.one_of(
    st.just(CIMD_CLIENT_ID),
    st.just(CIMD_CLIENT_ID),
    st.just(LOOPBACK_ID),
    hostile_urls,
    st.builds(lambda s: CIMD_CLIENT_ID + s, st.sampled_from(["#f", "?q=1", "/", "/../x", "%00", "/%2e%2e/"])),
    st.builds(lambda s: "https://" + s + "@client.example.com/c.json", hostile_text.map(lambda t: quote(t, safe=""))),
    st.sampled_from(
        [
            "https://client.example.com:0/c.json",
            "https://client.example.com:65536/c.json",
            "https://client.example.com",
            "https://[::ffff:10.0.0.1]/c.json",
            "https://169.254.169.254/latest/meta-data",
            "https://0x7f000001/c.json",
            "https://xn--zz/c.json",
            "https://client.example.com./c.json",
            "HTTPS://CLIENT.EXAMPLE.COM/c.json",
        ]
    ),
)

resolver_answers = st.one_of(
    st.just([PUBLIC_ADDRESS]),
    st.just([PUBLIC_ADDRESS]),
    st.sampled_from([["10.0.0.1"], ["169.254.169.254"], ["127.0.0.1"], ["::1"], ["::ffff:127.0.0.1"], [PUBLIC_ADDRESS, "10.0.0.1"], ["not-an-ip"], [], ["0.0.0.0"], ["fd00::1"]]),
    st.just(OSError("no such host")),
)


@st.composite
def document_bodies(draw: st.DrawFn, client_id: str, spoiled: bool) -> tuple[bytes, list[str]]:
    """A body and the redirect URIs a document in it would list."""
    kind = draw(st.sampled_from(["changed", "changed", "json", "bytes", "large"])) if spoiled else "valid"
    if kind == "valid":
        doc = cimd_document(client_id)
    elif kind == "changed":
        doc = cimd_document(client_id)
        for key in draw(st.lists(st.sampled_from(["client_id", "redirect_uris", "client_name", "token_endpoint_auth_method", "grant_types", "response_types", "client_uri", "client_secret", "jwks_uri"]), max_size=3, unique=True)):
            doc[key] = draw(st.one_of(hostile_text, hostile_urls, st.lists(st.one_of(hostile_urls, st.just(CLIENT_REDIRECT)), max_size=3), st.none(), st.integers()))
    elif kind == "json":
        return json.dumps(draw(st.one_of(st.lists(st.integers()), hostile_text, st.none()))).encode(), []
    elif kind == "bytes":
        return draw(st.binary(max_size=100)), []
    else:
        doc = cimd_document(client_id, client_name="x" * 6000)
    uris = doc.get("redirect_uris")
    listed = [u for u in uris if isinstance(u, str)] if isinstance(uris, list) else []
    return json.dumps(doc).encode(), listed


@dataclass
class DocumentAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    listed: list[str]


@st.composite
def document_answers(draw: st.DrawFn, client_id: str) -> DocumentAnswer:
    """The document server's answer: a valid document served right, with up to two of body,
    status, media type and extra headers spoiled."""
    spoil = draw(st.sets(st.sampled_from(["body", "status", "content_type", "headers"]), max_size=2))
    body, listed = draw(document_bodies(client_id, "body" in spoil))
    status = 200
    if "status" in spoil:
        status = draw(st.one_of(st.sampled_from([301, 302, 307, 204, 304, 404, 500, 503]), st.integers(100, 599)))
    content_type = "application/json"
    if "content_type" in spoil:
        content_type = draw(st.one_of(st.sampled_from(["application/client+json", "text/html", "application/json; charset=utf-8", "application/jsonx", ""]), header_values))
    headers = {"content-type": content_type}
    if status in (301, 302, 307):
        headers["location"] = "http://10.0.0.1/internal.json"
    extra = ["cache-control", "expires", "age", "content-encoding", "set-cookie"] if "headers" in spoil else []
    for name in draw(st.lists(st.sampled_from(extra), unique=True, max_size=3)) if extra else []:
        headers[name] = draw(st.one_of(st.sampled_from(["max-age=-1", "max-age=99999999999999999999", "no-store", "gzip", "0", "Thu, 01 Jan 1970 00:00:00 GMT"]), header_values))
    return DocumentAnswer(status, headers, body, listed)


def _answer(answer: DocumentAnswer):  # type: ignore[no-untyped-def]
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answer.status, headers=[(k, v.encode("latin-1")) for k, v in answer.headers.items()], content=answer.body)

    return respond


def _special_use(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    # Loopback is allowed here: the fixture's fetcher runs with allow_http_loopback (tests).
    return not address.is_global and not address.is_loopback


@FUZZ
@given(data=st.data())
def test_metadata_document_clients_get_consent_an_error_page_or_their_own_redirect(kit: FuzzKit, data: st.DataObject) -> None:
    client_id = data.draw(st.one_of(st.just(CIMD_CLIENT_ID), client_ids))
    answer = data.draw(document_answers(client_id))
    documents = kit.documents
    assert documents is not None
    documents.answer = _answer(answer)
    documents.resolve_to = data.draw(st.one_of(st.just([PUBLIC_ADDRESS]), resolver_answers))
    before = len(documents.requests)
    query = kit.authorize_query(client_id, CHALLENGE, redirect_uri=data.draw(st.sampled_from([CLIENT_REDIRECT, "https://client.example.com/cb"])))
    if data.draw(st.booleans()):
        query["response_type"] = "token"  # an error after the client is known
    kit.client.cookies.clear()
    with captured_logs(kit.public_url) as logs:
        response = kit.client.get("/oauth/authorize", params=query, follow_redirects=False)
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert_redirect_only_to(response, answer.listed)
    if response.status_code != 200 and "location" not in response.headers:
        assert_html_error_page(response)
    fetched = documents.requests[before:]
    assert len(fetched) <= 1  # redirects are never followed
    assert not any(_special_use(r.url.host) for r in fetched), [str(r.url) for r in fetched]
    assert_nothing_leaks(response, logs, kit.secrets)


def test_a_redirect_that_sets_a_latin1_cookie_is_an_error_page() -> None:
    """Pinned from the property above: httpx builds the (unfollowed) redirect's next request with
    the cookie the answer just set, and a latin-1 value cannot be encoded there."""
    documents = DocumentServer(
        answer=lambda request: httpx.Response(301, headers=[("set-cookie", b"\x80"), ("location", b"other.json")], content=b"{}")
    )
    kit = build_kit(documents=documents)
    response = kit.client.get("/oauth/authorize", params=kit.authorize_query(CIMD_CLIENT_ID, CHALLENGE), follow_redirects=False)
    assert_html_error_page(response)
