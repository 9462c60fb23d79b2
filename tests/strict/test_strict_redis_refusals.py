"""What the operator's log says when Redis refuses strict mode's commands: the kind of refusal
(the error code Redis sent, or the class redis-py made of it), so a misconfiguration can be told
from an outage; never the rest of the reply (it may name keys or addresses)."""

from __future__ import annotations

import logging
import time

import pytest
from redis.exceptions import AskError, MovedError, NoPermissionError, ResponseError

from mcp_oauth_shim.strict import RateBucket, RefreshUse, StrictMode, StrictModeUnavailable
from mcp_oauth_shim.strict.redis_store import refusal_code
from tests.peers.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.mark.parametrize(
    ("refusal", "code"),
    [
        # As redis-py raises them: the reply's text, less the ERR of a generic error.
        (ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
        (ResponseError("BUSY Redis is busy running a script."), "BUSY"),
        (ResponseError("unknown command 'evalsha'"), "ERR"),
        # Error codes redis-py turns into classes of their own, dropping the code from the text:
        # a Redis Cluster node redirecting to the node holding the key, an ACL refusal.
        (MovedError("3999 127.0.0.1:6381"), "MovedError"),
        (AskError("3999 127.0.0.1:6381"), "AskError"),
        (NoPermissionError("User shim has no permissions to run the 'evalsha' command"), "NoPermissionError"),
    ],
    ids=["NOREPLICAS", "BUSY", "ERR", "MOVED", "ASK", "NOPERM"],
)
def test_a_refusal_is_logged_by_its_kind_and_nothing_else(refusal: ResponseError, code: str) -> None:
    assert refusal_code(refusal) == code


async def test_a_redis_user_without_scripting_rights_is_logged_as_a_permission_refusal(
    own_redis_server: RedisServer, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL user that may SET but not run scripts: refresh checks are refused (503), and the
    warning says why."""
    with own_redis_server.client() as admin:
        admin.acl_setuser("shim", enabled=True, passwords=["+shim-acl-password"], keys=["*"], commands=["+@all", "-@scripting"])
    url = f"redis://shim:shim-acl-password@127.0.0.1:{own_redis_server.port}/0"
    mode = StrictMode.redis(url, key_prefix=key_prefix)
    try:
        with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.strict"), pytest.raises(StrictModeUnavailable):
            await mode.use_refresh("family", "token-1", time.time() + 300)
    finally:
        await mode.aclose()
    assert "Redis refused the command (NoPermissionError)" in caplog.text
    assert "shim-acl-password" not in caplog.text


# docs/strict-mode.md, "What is stored in Redis": the rights the shim's ACL user needs.
DOCUMENTED_RIGHTS = "~mcp-oauth-shim:* -@all +get +set +exists +pttl +del +time +evalsha +script|load"


async def test_a_redis_user_with_the_documented_rights_runs_every_operation(own_redis_server: RedisServer) -> None:
    with own_redis_server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "shim", "on", ">shim-acl-password", *DOCUMENTED_RIGHTS.split())
    mode = StrictMode.redis(f"redis://shim:shim-acl-password@127.0.0.1:{own_redis_server.port}/0")
    until = time.time() + 300
    try:
        answers = [
            await mode.consume_once("code", "sealed-code", until),
            await mode.use_refresh("family", "token-1", until),
            await mode.release_refresh("family", "token-1"),
            await mode.revoke_family("family", until),
            await mode.is_family_revoked("family"),
            (await mode.hit(RateBucket.TOKEN_IP, "198.51.100.7")).allowed,
        ]
        with own_redis_server.client() as admin:
            admin.script_flush()  # as a restart would: the scripts are loaded again
        answers.append(await mode.use_refresh("family", "token-2", until))
    finally:
        await mode.aclose()
    assert answers == [True, RefreshUse.FIRST_USE, True, None, True, True, RefreshUse.REVOKED]


def require_a_password(server: RedisServer) -> None:
    with server.client() as admin:
        admin.config_set("requirepass", "the-right-password")


def follow_an_absent_primary(server: RedisServer) -> None:
    """A read-only replica (what a failover leaves at the old primary's address)."""
    with server.client() as admin:
        admin.replicaof("127.0.0.1", "1")


# Misconfigurations an operator meets: the server, what to do to it, the URL's user part and
# database, and the kind of failure the warning names.
MISCONFIGURED = {
    "password required, none given": (require_a_password, "", 0, "AuthenticationError"),
    "wrong password": (require_a_password, ":a-wrong-password@", 0, "AuthenticationError"),
    "database that does not exist": (None, "", 99, "DB"),  # ERR DB index is out of range
    "read-only replica": (follow_an_absent_primary, "", 0, "ReadOnlyError"),
}


@pytest.mark.parametrize("case", list(MISCONFIGURED))
async def test_a_misconfigured_redis_refuses_with_unavailable_and_the_warning_names_the_kind(
    own_redis_server: RedisServer, key_prefix: str, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    configure, user, database, kind = MISCONFIGURED[case]
    if configure is not None:
        configure(own_redis_server)
    mode = StrictMode.redis(f"redis://{user}127.0.0.1:{own_redis_server.port}/{database}", key_prefix=key_prefix)
    try:
        with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.strict"), pytest.raises(StrictModeUnavailable):
            await mode.consume_once("code", "sealed-code", time.time() + 300)
    finally:
        await mode.aclose()
    assert f"({kind})" in caplog.text
    assert "password" not in caplog.text


async def test_a_replica_promoted_to_primary_is_written_to_again_without_a_restart(
    own_redis_server: RedisServer, key_prefix: str
) -> None:
    follow_an_absent_primary(own_redis_server)
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix)
    try:
        with pytest.raises(StrictModeUnavailable):
            await mode.consume_once("code", "sealed-code", time.time() + 300)
        with own_redis_server.client() as admin:
            admin.replicaof("NO", "ONE")
        assert await mode.consume_once("code", "sealed-code", time.time() + 300) is True
        assert await mode.consume_once("code", "sealed-code", time.time() + 300) is False
    finally:
        await mode.aclose()
