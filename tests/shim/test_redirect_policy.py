"""Redirect URI policy (DESIGN §6.2): what may be registered, and what matches at authorize."""

import pytest

from mcp_oauth_shim.redirects import RedirectURIError, check_registrable, matches

ACCEPTED = [
    "http://127.0.0.1:33418/callback",
    "http://127.0.0.1/callback",
    "http://localhost:8080/oauth/callback",
    "http://[::1]:9000/cb",
    "https://claude.ai/api/mcp/auth_callback",
    "https://vscode.dev/redirect",
    "https://chatgpt.com/connector/oauth/abc123",
    "https://app.example.com/cb?tenant=1",
    "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
    "com.example.app:/oauth2redirect",
]

REFUSED = [
    ("javascript:alert(1)", "scheme"),
    ("JAVASCRIPT:alert(1)", "lower-case"),
    ("data:text/html,<script>alert(1)</script>", ""),
    ("file:///etc/passwd", "scheme"),
    ("vbscript:msgbox", "scheme"),
    ("http://evil.example/cb", "plain http"),
    ("http://127.0.0.1.evil.example/cb", "plain http"),
    ("https://user:pass@evil.example/cb", "user information"),
    ("https://good.example@evil.example/cb", "user information"),
    ("https://app.example.com/cb#frag", "fragment"),
    ("https://app.example.com/a/../b", "dot segments"),
    ("https://app.example.com/a/%2e%2e/b", "encoded"),
    ("https://app.example.com/a%2Fb", "encoded"),
    ("https://app.example.com/a%5cb", "encoded"),
    ("https://app.example.com/a\\b", "control"),
    ("https://app.example.com/ cb", "whitespace"),
    ("https://app.example.com/cb\r\nSet-Cookie:x", "control"),
    ("https://app.example.com/caf\u00e9", "non-ASCII"),
    ("/relative/path", "absolute"),
    ("//evil.example/cb", "absolute"),
    ("https:///nohost", "no host"),
    ("https://app.example.com:99999/cb", "not a valid URI"),
    ("http://127.0.0.1:0/cb", "port 0"),
    ("myapp:/cb", "not allowed"),
    ("", "1 to 2000"),
    ("https://e.example/" + "a" * 2000, "1 to 2000"),
]


@pytest.mark.parametrize("uri", ACCEPTED)
def test_registrable_redirect_uris(uri):
    assert check_registrable(uri) == uri


@pytest.mark.parametrize(("uri", "reason"), REFUSED)
def test_refused_redirect_uris(uri, reason):
    with pytest.raises(RedirectURIError) as exc:
        check_registrable(uri)
    assert reason.lower() in str(exc.value).lower()


def test_operator_allow_list_admits_plain_http_intranet_uri():
    assert check_registrable("http://intranet.corp/cb", allowed=["http://intranet.corp/cb"])


@pytest.mark.parametrize("value", [None, 42, ["https://a.example/cb"], {"uri": "x"}])
def test_non_string_redirect_uri_is_refused(value):
    with pytest.raises(RedirectURIError):
        check_registrable(value)


MATCHES = [
    ("https://app.example.com/cb", ["https://app.example.com/cb"], True),
    ("https://app.example.com/cb/", ["https://app.example.com/cb"], False),
    ("https://APP.example.com/cb", ["https://app.example.com/cb"], False),
    ("https://app.example.com/cb?x=1", ["https://app.example.com/cb"], False),
    ("https://app.example.com:443/cb", ["https://app.example.com/cb"], False),
    ("https://app.example.com/cb", ["https://app.example.com/cb?x=1"], False),
    ("https://app.example.com.evil/cb", ["https://app.example.com/cb"], False),
    # RFC 8252 §7.3: any port on loopback http, same host and path.
    ("http://127.0.0.1:51234/callback", ["http://127.0.0.1/callback"], True),
    ("http://127.0.0.1:51234/callback", ["http://127.0.0.1:33418/callback"], True),
    ("http://localhost:51234/callback", ["http://localhost/callback"], True),
    ("http://[::1]:51234/callback", ["http://[::1]/callback"], True),
    ("http://127.0.0.1:51234/other", ["http://127.0.0.1/callback"], False),
    ("http://localhost:51234/callback", ["http://127.0.0.1/callback"], False),
    ("http://127.0.0.1:51234/callback?x=1", ["http://127.0.0.1/callback"], False),
    ("https://127.0.0.1:51234/callback", ["https://127.0.0.1/callback"], False),
    ("http://user@127.0.0.1:5/callback", ["http://127.0.0.1/callback"], False),
    ("http://127.0.0.1:5/callback#x", ["http://127.0.0.1/callback"], False),
    ("http://127.0.0.1:5/a/../callback", ["http://127.0.0.1/callback"], False),
    ("javascript:alert(1)", ["javascript:alert(1)"], False),
]


@pytest.mark.parametrize(("requested", "registered", "expected"), MATCHES)
def test_redirect_uri_matching(requested, registered, expected):
    assert matches(requested, registered) is expected
