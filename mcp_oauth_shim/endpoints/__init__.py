"""The shim's HTTP endpoints, one module per endpoint (handlers take a Starlette request).

- :mod:`.authorize`: ``GET /oauth/authorize``;
- :mod:`.consent`: the consent page and ``POST /oauth/consent``;
- :mod:`.callback`: ``GET /oauth/callback``, where the IdP sends the person back;
- :mod:`.token`: ``POST /oauth/token``;
- :mod:`.revoke`: ``POST /oauth/revoke``;
- :mod:`.base`: what the handlers share (bounded bodies, single-valued parameters, redirects,
  cookies, no-store JSON, CORS).
"""
