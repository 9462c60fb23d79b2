"""Real peers for the integration tests: Node 22 and npm packages pinned in package-lock.json
(oidc-provider as an Auth0-like IdP, mcp-remote 0.15.1 and 0.1.18, the MCP conformance suite),
a headless browser, and pytest fixtures that start and stop them on loopback.

Modules: node (install + paths), idp (the IdP process), browser (headless login),
browser_cli ($BROWSER for client processes), servers (ASGI apps under uvicorn),
procs (process plumbing), fixtures (pytest fixtures).
"""
