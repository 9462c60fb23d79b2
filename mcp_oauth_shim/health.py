"""Health endpoints for probes: liveness and readiness.

* ``GET /healthz`` (:attr:`~mcp_oauth_shim.config.Paths.liveness`): 200 ``{"status": "ok"}``
  whenever the process answers HTTP. It asks nothing of the IdP: a liveness probe that failed
  with the IdP would have the orchestrator restart healthy replicas during an IdP outage.
* ``GET /readyz`` (:attr:`~mcp_oauth_shim.config.Paths.readiness`): 200 when the IdP's
  discovery document could be read and is usable (the configured issuer, the endpoints the
  shim needs: RFC 8414 §3.3), 503 ``{"status": "unavailable", "reason": ...}`` when
  not. The answer is computed at most once per :data:`READINESS_TTL` seconds, and concurrent
  probes share one fetch, so probes cannot multiply into load on the IdP; each fetch gives up
  after :data:`READINESS_TIMEOUT` seconds. An upstream configured without discovery (its
  endpoints given) has nothing to fetch and is reported ready with ``"idp": "not checked"``.

Neither answer carries a secret, the document itself or its URL (which may be an internal
address): the reason says what failed ("answered 404 for its discovery document"), and the
shim logs the full description, URL included, at WARNING with each failed check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .memo import SingleFlight
from .upstream import UpstreamClient, UpstreamError

__all__ = ["READINESS_TIMEOUT", "READINESS_TTL", "Liveness", "Readiness", "ReadinessResult"]

#: Seconds a readiness answer is reused.
READINESS_TTL = 5.0
#: Seconds a readiness check waits for the IdP (probes usually time out after 1 to 10 s).
READINESS_TIMEOUT = 2.0

_NO_STORE = {"Cache-Control": "no-store"}

logger = logging.getLogger("mcp_oauth_shim.health")


class Liveness:
    """``GET /healthz``: the process is up."""

    async def __call__(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)


@dataclass(frozen=True)
class ReadinessResult:
    ready: bool
    idp: str  # "reachable", "unreachable", "not checked"
    reason: str | None
    checked_at: float


class Readiness:
    """``GET /readyz``: can the identity provider be reached (see the module's description)."""

    def __init__(
        self,
        upstream_client: UpstreamClient,
        *,
        ttl: float = READINESS_TTL,
        timeout: float = READINESS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream_client = upstream_client
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._last: ReadinessResult | None = None
        self._flight: SingleFlight[str, ReadinessResult] = SingleFlight()

    async def check(self) -> ReadinessResult:
        last = self._last
        if last is not None and self._clock() - last.checked_at < self.ttl:
            return last
        result = await self._flight.run("idp", self._probe)
        self._last = result
        return result

    async def _probe(self) -> ReadinessResult:
        url = self.upstream_client.upstream.metadata_url
        if url is None:
            return ReadinessResult(True, "not checked", None, self._clock())
        try:
            document = await asyncio.wait_for(self.upstream_client.get_json(url), self.timeout)
            # Read is not enough: a document naming another issuer, or no token endpoint, is
            # one every login would be refused for (502), so the replica is not ready.
            self.upstream_client.metadata_from(document)
        except UpstreamError as exc:
            # The probe is public; where the shim reads the IdP's metadata may be an internal
            # address: the answer names the document, the operator's log the URL.
            logger.warning("not ready: %s", exc.description)
            return ReadinessResult(False, "unreachable", exc.description.replace(url, "its discovery document"), self._clock())
        except TimeoutError:
            return ReadinessResult(False, "unreachable", "The identity provider did not answer in time.", self._clock())
        return ReadinessResult(True, "reachable", None, self._clock())

    async def __call__(self, request: Request) -> Response:
        result = await self.check()
        if result.ready:
            return JSONResponse({"status": "ok", "idp": result.idp}, headers=_NO_STORE)
        return JSONResponse(
            {"status": "unavailable", "idp": result.idp, "reason": result.reason}, status_code=503, headers=_NO_STORE
        )
