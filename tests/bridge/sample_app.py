"""A deliberately varied FastAPI app for the bridge tests.

It has every parameter kind, object/array/scalar/form bodies, a recursive model, response
models of several shapes, binary responses, redirects, failing routes, tags, scoped routes,
middleware and dependencies - and a few routes that a path argument must never reach.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Cookie, Depends, FastAPI, File, Form, Header, HTTPException, Path, Query, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.security import SecurityScopes
from pydantic import BaseModel, Field

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"


class TreeNode(BaseModel):
    """A recursive model: a node holds nodes."""

    label: str
    children: list[TreeNode] = []


class Forest(BaseModel):
    """Not recursive itself, but holds a recursive model."""

    name: str
    trees: list[TreeNode]


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    price: float = Field(gt=0)
    tags: list[str] = []


class ItemOut(BaseModel):
    id: int
    name: str
    price: float


class Calls:
    """What the routes saw, for assertions."""

    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []

    def add(self, **fields: object) -> None:
        self.seen.append(fields)


def scoped(security_scopes: SecurityScopes) -> list[str]:
    return security_scopes.scopes


def build_app() -> tuple[FastAPI, Calls]:
    app = FastAPI(title="sample", version="1.2.3", description="A varied app for the bridge tests")
    calls = Calls()

    @app.middleware("http")
    async def stamp(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["x-middleware"] = "ran"
        return response

    async def tenant(x_tenant: Annotated[str | None, Header()] = None) -> str:
        return x_tenant or "default"

    # Literal routes first: a path argument of /items/{item_id} must never reach them.
    @app.get("/items/admin", operation_id="items_admin", tags=["admin"])
    def items_admin() -> dict[str, str]:
        calls.add(route="items_admin")
        return {"secret": "admin"}

    @app.get("/items/{item_id}", response_model=ItemOut, operation_id="get_item", tags=["items"])
    def get_item(
        item_id: Annotated[str, Path(description="the item id")],
        request: Request,
        verbose: Annotated[bool, Query()] = False,
        x_request_id: Annotated[str | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
        authorization: Annotated[str | None, Header()] = None,
        tenant_name: str = Depends(tenant),
    ) -> ItemOut:
        calls.add(
            route="get_item",
            item_id=item_id,
            verbose=verbose,
            x_request_id=x_request_id,
            session=session,
            authorization=authorization,
            tenant=tenant_name,
            raw_path=request.scope["raw_path"],
            headers=dict(request.headers),
        )
        return ItemOut(id=len(item_id), name=item_id, price=1.0)

    @app.get("/items/{item_id}/admin", operation_id="item_admin", tags=["admin"])
    def item_admin(item_id: str) -> dict[str, str]:
        calls.add(route="item_admin", item_id=item_id)
        return {"secret": "item-admin"}

    @app.post("/items", response_model=ItemOut, status_code=201, operation_id="create_item", tags=["items"])
    def create_item(item: Item, dry_run: Annotated[bool, Query()] = False) -> ItemOut:
        calls.add(route="create_item", item=item.model_dump(), dry_run=dry_run)
        return ItemOut(id=7, name=item.name, price=item.price)

    @app.put("/items/{item_id}", operation_id="replace_item", tags=["items"])
    def replace_item(item_id: int, item: Item) -> dict[str, object]:
        return {"id": item_id, "name": item.name}

    @app.delete("/items/{item_id}", status_code=204, operation_id="delete_item", tags=["items"])
    def delete_item(item_id: int) -> Response:
        calls.add(route="delete_item", item_id=item_id)
        return Response(status_code=204)

    @app.post("/numbers/sum", operation_id="sum_numbers", tags=["math"])
    def sum_numbers(values: list[int]) -> int:
        return sum(values)

    @app.post("/echo/name", operation_id="echo_name", tags=["math"])
    def echo_name(name: Annotated[str, Body()]) -> str:
        return name

    @app.post("/trees", response_model=TreeNode, operation_id="echo_tree", tags=["trees"])
    def echo_tree(tree: TreeNode) -> TreeNode:
        return tree

    @app.get("/trees/list", response_model=list[TreeNode], operation_id="list_trees", tags=["trees"])
    def list_trees() -> list[TreeNode]:
        return [TreeNode(label="root", children=[TreeNode(label="leaf")])]

    @app.post("/forests", operation_id="plant_forest", tags=["trees"])
    def plant_forest(forest: Forest) -> dict[str, object]:
        return {"name": forest.name, "trees": len(forest.trees)}

    @app.put("/forests/{name}", operation_id="rename_forest", tags=["trees"])
    def rename_forest(name: str, forest: Forest) -> dict[str, object]:
        return {"old": name, "new": forest.name}

    @app.post("/login-form", operation_id="login_form", tags=["forms"])
    def login_form(username: Annotated[str, Form()], remember: Annotated[bool, Form()] = False) -> dict[str, object]:
        return {"username": username, "remember": remember}

    @app.post("/upload", operation_id="upload", tags=["forms"])
    async def upload(blob: Annotated[bytes, File()], note: Annotated[str, Form()] = "") -> dict[str, object]:
        return {"size": len(blob), "note": note}

    @app.get("/files/{file_path:path}", operation_id="read_file", tags=["files"])
    def read_file(file_path: str) -> dict[str, str]:
        calls.add(route="read_file", file_path=file_path)
        return {"path": file_path}

    @app.get("/media/png", operation_id="png", tags=["media"])
    def png() -> Response:
        return Response(PNG, media_type="image/png")

    @app.get("/media/wav", operation_id="wav", tags=["media"])
    def wav() -> Response:
        return Response(WAV, media_type="audio/wav")

    @app.get("/media/pdf", operation_id="pdf", tags=["media"])
    def pdf() -> Response:
        return Response(PDF, media_type="application/pdf")

    @app.get("/text", operation_id="text", tags=["media"])
    def text() -> PlainTextResponse:
        return PlainTextResponse("plain words")

    @app.get("/redirect/away", operation_id="redirect_away", tags=["redirects"])
    def redirect_away() -> RedirectResponse:
        return RedirectResponse("https://evil.example.com/steal", status_code=307)

    @app.get("/redirect/inside", operation_id="redirect_inside", tags=["redirects"])
    def redirect_inside() -> RedirectResponse:
        return RedirectResponse("/items/admin", status_code=302)

    @app.get("/fail/{code}", operation_id="fail", tags=["errors"])
    def fail(code: int) -> JSONResponse:
        raise HTTPException(status_code=code, detail="nope\x1b[31m\r\ninjected" + "x" * 5000)

    @app.get("/crash", operation_id="crash", tags=["errors"])
    def crash() -> dict[str, str]:
        raise RuntimeError("boom")

    @app.get("/whoami", operation_id="whoami", tags=["auth"])
    def whoami(request: Request) -> dict[str, object]:
        headers = dict(request.headers)
        calls.add(route="whoami", headers=headers)
        return {"authorization": headers.get("authorization"), "cookie": headers.get("cookie")}

    @app.get("/reports", operation_id="read_reports", tags=["auth"])
    def read_reports(scopes: Annotated[list[str], Security(scoped, scopes=["reports:read"])]) -> dict[str, object]:
        return {"scopes": scopes}

    @app.post("/reports", operation_id="write_report", tags=["auth"])
    def write_report(
        scopes: Annotated[list[str], Security(scoped, scopes=["reports:read", "reports:write"])],
    ) -> dict[str, object]:
        return {"scopes": scopes}

    @app.get("/hidden", include_in_schema=False)
    def hidden() -> dict[str, str]:
        return {"hidden": "yes"}

    return app, calls
