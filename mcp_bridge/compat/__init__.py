"""FastAPI-MCP 0.4's public surface on the bridge and the shim: migrate by changing one import.

    from mcp_bridge.compat import FastApiMCP, AuthConfig      # was: from fastapi_mcp import ...

`FastApiMCP` takes FastAPI-MCP 0.4's constructor arguments and methods (`mount_http`,
`mount_sse`, `mount`, `setup_server`) and runs them on `MCPBridge`; `AuthConfig` takes its
fields and validators and maps them to `OAuthShim`:

* `setup_proxies=True` -> an `OAuthShim` in front of the IdP (`issuer`, `oauth_metadata_url`,
  `authorize_url`, `client_id`, `client_secret`, `audience` sent as Auth0's `audience=`,
  `default_scope` requested and always added);
* `setup_fake_dynamic_registration` -> the shim's signed registration (True) or the static
  upstream client_id with an operator allow-list of redirect URIs (False); never the secret;
* `custom_oauth_metadata` -> `OAuthShim(custom_metadata=...)`, verifying tokens when the
  document names a `jwks_uri`;
* `dependencies` -> FastAPI dependencies on the MCP endpoint, refusals with a Bearer challenge;
* `metadata_path` -> one more place the authorization server metadata is served.

What FastAPI-MCP took from each request's `Host` header (every OAuth URL it advertised) comes
from a configured public URL here: `FastApiMCP(..., public_url=...)` or the
`MCP_OAUTH_SHIM_PUBLIC_URL` variable, the same one `mcp-oauth-shim serve` reads. Every
difference is listed in docs/migrating-from-fastapi-mcp.md.

Three modules: `config` (the two models and the environment settings), `deferred` (the shim,
built at the first mount) and `facade` (`FastApiMCP` itself).
"""


from mcp_bridge.compat.config import ENV_PUBLIC_URL, ENV_SECRET_KEYS, AuthConfig, OAuthMetadata
from mcp_bridge.compat.facade import FastApiMCP

__all__ = ["ENV_PUBLIC_URL", "ENV_SECRET_KEYS", "AuthConfig", "FastApiMCP", "OAuthMetadata"]
