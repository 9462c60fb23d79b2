"""A thin Starlette <-> authlib adapter (authlib ships Flask and Django ones, not Starlette).

authlib reads requests synchronously, Starlette bodies are async: the handler awaits the form
first and hands :class:`StarletteOAuth2Request` a finished snapshot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Payload(BasicOAuth2Payload):
    """Parameters of one request; repeated names are kept so authlib can refuse duplicates
    (RFC 6749 §3.1 and §3.2: parameters MUST NOT be included more than once)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            datalist[key].append(value)
        super().__init__({key: values[0] for key, values in datalist.items()})
        self._datalist = datalist


class StarletteOAuth2Request(OAuth2Request):
    """An authlib request built from a Starlette request whose form was already read.

    GET parameters come from the query string; POST parameters only from the
    ``application/x-www-form-urlencoded`` body (RFC 6749 §3.2: the token endpoint takes no query).
    """

    def __init__(self, request: Request, form: FormData | None = None) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        query_items = list(request.query_params.multi_items())
        form_items = [(k, v) for k, v in (form.multi_items() if form else []) if isinstance(v, str)]
        self._query = dict(query_items)
        self._form = dict(form_items)
        self.payload = Payload(form_items if request.method == "POST" else query_items)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


def to_response(status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    """authlib's ``(status, body, headers)`` as a Starlette response; JSON bodies are never cached."""
    merged = dict(headers)
    if isinstance(body, dict):
        merged |= {**NO_STORE, "Content-Type": "application/json"}
        return Response(json.dumps(body), status_code=status, headers=merged)
    return Response(body or "", status_code=status, headers=merged)
