"""Who a ``client_id`` is: a signed registration, a metadata document URL, or the static client.

Nothing is stored. A registered client_id *is* its registration, signed
(:class:`.payloads.ClientRegistration`, issued by :mod:`.endpoints.register`);
a URL client_id is resolved by fetching its metadata document (:mod:`.cimd`); the upstream
client_id itself is accepted only in ``registration="static"`` mode, with the operator's
allow-list of redirect URIs.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from .errors import InvalidClientError, InvalidRequestError, ascii_description
from .memo import BoundedMemo
from .payloads import ClientRegistration
from .redirects import matches
from .sealing import Sealer, SealError, digest

if TYPE_CHECKING:
    from .cimd import ClientMetadataDocuments

ClientKind = Literal["registered", "metadata_document", "static"]
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Client:
    client_id: str
    redirect_uris: tuple[str, ...]
    kind: ClientKind
    name: str | None = None
    application_type: str = "native"
    client_uri: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        """How sealed codes and refresh tokens name the client they were issued to."""
        return digest(self.client_id)


class ClientResolver:
    def __init__(
        self,
        sealer: Sealer,
        *,
        client_id_max_age: int,
        static_client_id: str | None,
        allowed_redirect_uris: Sequence[str],
        metadata_documents: ClientMetadataDocuments | None,
    ) -> None:
        self._sealer = sealer
        self._max_age = client_id_max_age
        self._static_client_id = static_client_id
        self._allowed = tuple(allowed_redirect_uris)
        self._documents = metadata_documents
        # Resolved signed client_ids, each kept no longer than its own validity.
        self._cache: BoundedMemo[str, Client] = BoundedMemo(CACHE_SIZE)

    def is_operator_approved(self, redirect_uri: str) -> bool:
        """Is ``redirect_uri`` one the operator allow-listed (every static client's URI is)?

        Such a URI is trusted before any person approved the client, so authorization errors
        may be redirected to it (RFC 9700 §4.11.2); a URI a client registered itself is not.
        """
        return bool(self._allowed) and matches(redirect_uri, self._allowed)

    async def resolve(self, client_id: object) -> Client:
        """The client behind ``client_id``, or :class:`InvalidClientError` saying why not."""
        if not isinstance(client_id, str) or not client_id:
            raise InvalidClientError(description="client_id is missing.")
        if self._static_client_id is not None:
            # Static mode: the one upstream client_id, confined to the operator's allow-list.
            if client_id != self._static_client_id:
                raise InvalidClientError(description="Unknown client_id; register at the registration endpoint.")
            return Client(client_id, self._allowed, "static", name=None)
        if self._documents is not None and client_id.startswith(("https://", "http://")):
            # Signed client_ids never look like URLs, so every URL is a metadata document.
            from .cimd import ClientMetadataError

            try:
                doc = await self._documents.get(client_id)
            except ClientMetadataError as exc:
                raise InvalidClientError(description=ascii_description(f"Client metadata document refused: {exc}")) from None
            return Client(
                client_id,
                doc.redirect_uris,
                "metadata_document",
                name=doc.client_name,
                application_type=doc.application_type or "native",
                client_uri=doc.client_uri or None,
            )
        now = time.time()
        cached = self._cache.get(client_id, now)
        if cached is not None:
            return cached
        try:
            registration, signed_at = ClientRegistration.open_timed(self._sealer, client_id, max_age=self._max_age)
        except SealError as exc:
            raise InvalidClientError(
                description=f"Unknown client_id ({exc.reason}); register again at the registration endpoint."
            ) from None
        client = Client(
            client_id,
            registration.redirect_uris,
            "registered",
            name=registration.client_name,
            application_type=registration.application_type,
            client_uri=registration.client_uri,
        )
        self._cache.put(client_id, client, signed_at + self._max_age)
        return client


# Not frozen: a frozen dataclass's __init__ costs 3x a slotted one's (3.9 against 1.3 µs on
# the bench machine), paid on every token request.
@dataclass(slots=True)
class ClientCredentials:
    """How a token or revocation request names (and may authenticate) its client.

    RFC 6749 §2.3.1: in an HTTP Basic header (``basic``) or as ``client_id`` and
    ``client_secret`` in the form body; RFC 6749 §3.2.1: a public client sends its
    ``client_id`` in the body. ``secret`` is ``None`` when none was presented.
    """

    client_id: str
    secret: str | None
    basic: bool

    def refused(self, description: str) -> InvalidClientError:
        """RFC 6749 §5.2: ``invalid_client``; 401 (and a Basic challenge, added by
        :func:`.errors.json_error`) when the client tried the Authorization header."""
        return InvalidClientError(description=description, status_code=401 if self.basic else 400)


def presented_credentials(form: dict[str, str], authorization: str | None) -> ClientCredentials:
    """The client credentials of a token or revocation request, checked for shape only."""
    body_client_id = form.get("client_id")
    body_secret = form.get("client_secret")
    if not authorization:
        if not body_client_id:
            raise InvalidClientError(description="client_id is required for public clients (RFC 6749 section 4.1.3).")
        return ClientCredentials(body_client_id, body_secret, False)
    client_id, secret = _basic_credentials(authorization)
    if body_secret is not None:
        # RFC 6749 §2.3 and §5.2: one client authentication method per request.
        raise InvalidRequestError(description="Send the client secret in the Authorization header or the body, not both.")
    if body_client_id is not None and body_client_id != client_id:
        raise _unauthorized("client_id in the body and the Authorization header differ.")
    return ClientCredentials(client_id, secret, True)


async def authenticate_client(
    resolver: ClientResolver, credentials: ClientCredentials, *, static_secret: str
) -> Client:
    """The client the credentials name, or :class:`InvalidClientError` (RFC 6749 §2.3, §5.2).

    Every client the shim serves is public (RFC 7591 registrations and metadata documents get
    ``token_endpoint_auth_method: none``), so a client presents its ``client_id`` and no
    secret, or an empty one (some clients always send Basic). A non-empty secret is checked:
    the static client (``registration="static"``) is the IdP's own client, whose secret is
    ``static_secret``; every other client has none, so any secret it presents is wrong.
    """
    try:
        client = await resolver.resolve(credentials.client_id)
    except InvalidClientError as err:
        raise credentials.refused(err.description or "Unknown client_id.") from None
    if credentials.secret:
        expected = static_secret if client.kind == "static" else ""
        if not expected:
            raise credentials.refused("This client is public and has no secret: send none.")
        if not hmac.compare_digest(credentials.secret.encode(), expected.encode()):
            raise credentials.refused("The client secret is wrong.")
    return client


def _basic_credentials(header: str) -> tuple[str, str]:
    """RFC 7617 §2 ``user-id ":" password``, each form-encoded first (RFC 6749 §2.3.1)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _unauthorized("Only Basic client authentication or client_id in the body is accepted.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _unauthorized("The Basic authorization header is malformed.") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise _unauthorized("The Basic authorization header must carry client_id:client_secret.")
    return unquote(client_id), unquote(secret)


def _unauthorized(description: str) -> InvalidClientError:
    """RFC 6749 §5.2: ``invalid_client`` with 401, for a client that tried the Authorization header."""
    return InvalidClientError(description=description, status_code=401)
