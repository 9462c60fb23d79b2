"""Shared setup of the OAuth scenarios: a stub IdP, the shim in front of it, one real flow."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from bench import procs
from bench.context import Ctx
from bench.loadgen import encode_request
from bench.oauthflow import REDIRECT_URI, Flow, run_flow


@dataclass
class ShimSetup:
    upstream: procs.Server  # the stub IdP the shim talks to (pinned with the load generator)
    shim: procs.Server
    issuer: str
    flow: Flow

    @property
    def resource(self) -> str:
        return f"http://127.0.0.1:{self.shim.port}/mcp"


def load_core() -> int | None:
    cs = procs.cores()
    return cs[-1] if len(cs) >= 2 else None


def start_shim(ctx: Ctx, **options: str) -> ShimSetup:
    """The upstream stub runs on the load generator's core: it stands for a remote IdP and must
    not take CPU from the shim being measured (its cost per request is ~0.03 ms)."""
    up = ctx.spawn("stub_idp", _core=load_core())
    issuer = f"http://127.0.0.1:{up.port}"
    shim = ctx.spawn("shim", stub=issuer, **options)
    flow = run_flow(shim.port, issuer)
    return ShimSetup(up, shim, issuer, flow)


def code_form(s: ShimSetup, code: str) -> bytes:
    return urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": s.flow.client_id,
            "code_verifier": s.flow.verifier,
            "resource": s.resource,
        }
    ).encode()


def refresh_form(s: ShimSetup, token: str) -> bytes:
    return urlencode(
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": s.flow.client_id, "resource": s.resource}
    ).encode()


def form_post(port: int, path: str, body: bytes) -> bytes:
    return encode_request(
        "POST",
        path,
        host=f"127.0.0.1:{port}",
        headers=[("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
        body=body,
    )
