"""Configured service URLs: https, or http on loopback only (RFC 8252 §8.3)."""

import pytest

from mcp_oauth_shim.urls import is_loopback_host, service_url_problem


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "url",
    ["https://idp.example.com", "https://idp.example.com/realms/x?tenant=1", "http://127.0.0.1:8080/", "http://localhost"],
)
def test_acceptable_service_urls(url):
    assert service_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://idp.example.com", "use https"),
        ("ftp://idp.example.com", "absolute http(s) URL"),
        ("/relative", "absolute http(s) URL"),
        ("https://", "absolute http(s) URL"),
        ("https://idp.example.com/#frag", "fragment"),
        ("https://idp.example.com:99999/", "valid absolute"),
        ("https://[::1/", "valid absolute"),
        (42, "string"),
    ],
)
def test_unacceptable_service_urls_say_why(url, problem):
    assert problem in service_url_problem(url)


def test_a_query_can_be_refused():
    assert "query" in service_url_problem("https://mcp.example.com/?x=1", query_allowed=False)
