"""How the shim authenticates itself to the IdP's token, revocation and introspection
endpoints (RFC 6749 §2.3.1; RFC 7009 §2.1 and RFC 7662 §2.1 reuse it).

``client_secret_basic``: HTTP Basic with the client ID and secret, each form-urlencoded before
they are joined and base64-encoded (RFC 6749 §2.3.1 says so explicitly; many clients forget,
and a secret with ``:`` or ``%`` then fails). ``client_secret_post``: both in the form body.
The ``client_id`` goes into the body in both cases, as some IdPs require it there.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from ..forms import urlencode
from ..media_types import FORM, JSON

__all__ = ["CREDENTIAL_FIELDS", "ClientAuthentication", "client_authentication"]

#: Form fields that carry the shim's credentials; a caller's form never sets them.
CREDENTIAL_FIELDS = frozenset({"client_id", "client_secret"})


@dataclass(frozen=True)
class ClientAuthentication:
    """What authenticates one client: form fields (encoded) and header fields to add. Both
    may hold the client secret: neither is in the ``repr`` (tracebacks, debug logs)."""

    form: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(repr=False)

    def body(self, form: Mapping[str, str] | None = None) -> bytes:
        """``form`` (credential fields in it dropped: ours win) followed by the credentials."""
        if not form:
            return self.form.encode()
        if CREDENTIAL_FIELDS & form.keys():
            form = {k: v for k, v in form.items() if k not in CREDENTIAL_FIELDS}
        return (urlencode(form) + "&" + self.form).encode() if form else self.form.encode()


def client_authentication(method: str, client_id: str, client_secret: str) -> ClientAuthentication:
    """The form and headers for ``method`` (``client_secret_basic`` or ``client_secret_post``)."""
    headers: tuple[tuple[str, str], ...] = (("Accept", JSON), ("Content-Type", FORM))
    if method != "client_secret_basic":
        return ClientAuthentication(urlencode({"client_id": client_id, "client_secret": client_secret}), headers)
    # HTTP Basic (RFC 6749 §2.3.1): each part form-urlencoded, then joined and base64-encoded.
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    basic = ("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return ClientAuthentication(urlencode({"client_id": client_id}), (*headers, basic))
