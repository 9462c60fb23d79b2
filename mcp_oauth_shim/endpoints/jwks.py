"""``GET /oauth/jwks``: the shim's public signing keys (issued-token mode), RFC 7517 §5.

Resource servers that verify the shim's access tokens themselves (another service, another
language) fetch this document from the ``jwks_uri`` of the shim's RFC 8414 metadata. It holds
every key of :class:`..signing_keys.SigningKeys` (the one that signs and the older ones that
still verify), public parts only.

Media type: ``application/json``. RFC 7517 §8.5 registers ``application/jwk-set+json`` but no
specification requires it; the IdPs these resource servers already read (Google, Auth0, Okta,
Keycloak, Entra ID) serve ``application/json``, and some JOSE clients accept only that.
Cacheable for five minutes: a rotation publishes the new key before it signs (it is added to
``secret_keys`` first), and verifiers refetch on an unknown ``kid``.
"""

from __future__ import annotations

from ..signing_keys import SigningKeys
from .metadata import StaticDocument


class JwksHandler(StaticDocument):
    """Serves the JWK Set, encoded once."""

    def __init__(self, keys: SigningKeys) -> None:
        super().__init__(keys.jwks_json)
