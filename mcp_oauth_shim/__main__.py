"""``python -m mcp_oauth_shim serve|doctor ...``: the same as the ``mcp-oauth-shim`` command."""

from .cli import main

raise SystemExit(main())
