"""``python -m mcp_oauth_shim.dev_idp``: run the development IdP on its own. NOT FOR PRODUCTION.

The client secret comes from ``DEV_IDP_CLIENT_SECRET`` (never from a flag, so it stays out of
``ps`` output and shell history); set the same value as the shim's upstream client secret.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from . import DevIdP


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_oauth_shim.dev_idp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--issuer", help="issuer URL, byte for byte (default: http://HOST:PORT)")
    parser.add_argument("--client-id", default="mcp-oauth-shim-dev")
    parser.add_argument("--redirect-uri", action="append", default=None,
                        help="exact redirect URI of the client (repeatable; default: http://127.0.0.1:8000/oauth/callback)")
    parser.add_argument("--audience", action="append", default=None,
                        help="API identifier tokens may be requested for (repeatable; default: any)")
    parser.add_argument("--auto-approve", action="store_true", help="sign the demo user in without a login form")
    parser.add_argument("--send-iss", action="store_true", help="add RFC 9207 iss to authorization responses")
    args = parser.parse_args(argv)

    if not (secret := os.environ.get("DEV_IDP_CLIENT_SECRET")):
        print("Set DEV_IDP_CLIENT_SECRET to the client secret the shim will use.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    idp = DevIdP(
        issuer=args.issuer or f"http://{args.host}:{args.port}",
        client_id=args.client_id,
        client_secret=secret,
        redirect_uris=args.redirect_uri or ["http://127.0.0.1:8000/oauth/callback"],
        audiences=args.audience,
        auto_approve=args.auto_approve,
        send_iss=args.send_iss,
    )
    print(f"Development IdP: {idp.issuer}/.well-known/openid-configuration  client_id={idp.client_id}")
    asyncio.run(idp.serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
