"""In-process cost of verifying a bearer token: the verifier's cached path and a fresh JWT.

``python bench/inproc_verify.py [--calls 200000] [--repeat 5]``

The authenticated tools/call figure depends on what ``BearerVerifier.authenticate`` costs for a
token it has seen (JWKS cached, token cached): a dictionary lookup. This loop times
exactly that, plus (for scale) the verification of a token not seen before (RS256 signature,
claims, access-token profile). CPU time (``time.process_time``), best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import RSAKey  # noqa: E402

from mcp_oauth_shim.config import Upstream  # noqa: E402
from mcp_oauth_shim.upstream import UpstreamClient  # noqa: E402
from mcp_oauth_shim.verify import BearerVerifier  # noqa: E402

ISSUER = "https://idp.bench"
AUDIENCE = "http://127.0.0.1:8000/mcp"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--fresh", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-key-1", "alg": "RS256", "use": "sig"})

    def idp(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "authorization_endpoint": ISSUER + "/a",
                                             "token_endpoint": ISSUER + "/t", "jwks_uri": ISSUER + "/jwks"})
        return httpx.Response(200, json={"keys": [key.as_dict(private=False)]})

    def token(sub: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now, "exp": now + 3600,
                  "scope": "openid profile", "client_id": "bench-client"}
        return jwt.encode({"alg": "RS256", "kid": "bench-key-1", "typ": "at+jwt"}, claims, key)

    async def run() -> None:
        upstream = UpstreamClient(
            Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s"),
            http=httpx.AsyncClient(transport=httpx.MockTransport(idp)),
        )
        verifier = BearerVerifier(upstream, audience=AUDIENCE, resource_metadata_url=AUDIENCE, cache_size=1 << 20)
        cached = token("cached")
        await verifier.authenticate(cached)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            for _ in range(args.calls):
                await verifier.authenticate(cached)
            best = min(best, (time.process_time() - start) / args.calls)
        print(f"cached token: {best * 1e6:.3f} us per authenticate")
        fresh = [token(f"u{n}") for n in range(args.fresh * args.repeat)]
        best = float("inf")
        for r in range(args.repeat):
            batch = fresh[r * args.fresh:(r + 1) * args.fresh]
            start = time.process_time()
            for t in batch:
                await verifier.authenticate(t)
            best = min(best, (time.process_time() - start) / args.fresh)
        print(f"new token:    {best * 1e6:.1f} us per authenticate")

    asyncio.run(run())


if __name__ == "__main__":
    main()
