"""The demo's API: a small FastAPI app whose routes become MCP tools through the bridge.

Each route is an ordinary FastAPI route; `MCPBridge(app, auth=shim)` turns them into tools and
puts the OAuth shim in front of `/mcp`. Plain HTTP callers use the same routes with the same
bearer token (`bearer_token(shim)` checks it for them).
"""

# No `from __future__ import annotations`: FastAPI must see the Security(...) objects.

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, HTTPException, Security
from mcp.server.auth.provider import AccessToken
from pydantic import BaseModel

from mcp_bridge import MCPBridge, bearer_token
from mcp_oauth_shim import OAuthShim


class Me(BaseModel):
    subject: str | None
    scopes: list[str]


class Note(BaseModel):
    id: int
    text: str


def build_demo_api(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="Demo notes API")
    verified = bearer_token(shim)
    notes: dict[int, Note] = {1: Note(id=1, text="Welcome to the mcp-oauth-shim demo")}

    @app.get("/me", operation_id="whoami")
    def whoami(token: Annotated[AccessToken, Security(verified)]) -> Me:
        """Who is calling: the subject and scopes of the access token the IdP issued."""
        return Me(subject=token.subject, scopes=token.scopes)

    @app.get("/time", operation_id="current_time")
    def current_time(timezone: str = "UTC") -> dict[str, str]:
        """The current date and time in an IANA time zone such as Europe/Paris."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise HTTPException(400, f"Unknown time zone {timezone!r}; use an IANA name like Europe/Paris.") from None
        return {"timezone": timezone, "now": datetime.now(zone).isoformat(timespec="seconds")}

    @app.get("/notes", operation_id="list_notes")
    def list_notes(token: Annotated[AccessToken, Security(verified)]) -> list[Note]:
        """Every note."""
        return list(notes.values())

    @app.post("/notes", operation_id="add_note", status_code=201)
    def add_note(text: str, token: Annotated[AccessToken, Security(verified)]) -> Note:
        """Add a note and return it."""
        note = Note(id=max(notes, default=0) + 1, text=text)
        notes[note.id] = note
        return note

    MCPBridge(app, auth=shim, name="demo-notes").mount_http("/mcp")
    return app
