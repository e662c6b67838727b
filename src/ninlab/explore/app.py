"""The live page's web app: Starlette routes over an `Explorer`, and the page's own files.

Every answer is JSON; a request the explorer refuses gets {"error": one sentence} with status 400
(413 for an upload over UPLOAD_LIMIT), which the page shows where the picture would be. An
upload arrives as the request's body (no multipart form), is saved under a random name in
`folder` (the server's private temporary folder) only as long as it is read, and is then
removed; its own name is used for messages only.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ninlab.errors import NinlabError
from ninlab.explore.explorer import Explorer

STATIC = Path(__file__).parent / "static"
UPLOAD_LIMIT = 32 * 2**20  # bytes: a phone's photo fits; a larger file is refused unread


class Refused(NinlabError):
    """An upload refused before it was read (too large)."""


def make_app(explorer: Explorer, folder: Path) -> Starlette:
    """The app: the page at /, its files under /static, and the JSON API under /api."""

    async def page(request: Request):
        return FileResponse(STATIC / "index.html")

    def about(request: Request):  # with the limit, so that the page refuses a file unsent
        return JSONResponse({**explorer.about(), "upload_limit": UPLOAD_LIMIT})

    def model(request: Request):
        return JSONResponse(explorer.model())

    async def picture(request: Request):
        return JSONResponse(await _with_upload(request, folder, explorer.file_picture))

    async def test_picture(request: Request):
        body = await _json(request)
        return JSONResponse(await run_in_threadpool(
            explorer.test_picture, _int(body.get("index"), "index", none=True), body.get("class"),
            _int(body.get("nth", 0), "nth")))  # fmt: skip

    def class_map(request: Request):
        p = request.path_params
        return JSONResponse(explorer.class_map(p["pid"], p["c"]))

    def layer(request: Request):
        q = request.query_params
        return JSONResponse(explorer.layer(request.path_params["pid"], q.get("name", "")))

    def unit(request: Request):
        q = request.query_params
        c = _int(q.get("class"), "class", none=True)
        ints = [_int(q.get(k), k) for k in ("channel", "i", "j")]
        return JSONResponse(explorer.unit(request.path_params["pid"], q.get("layer", ""), *ints, c))

    async def scene(request: Request):
        return JSONResponse(await _with_upload(request, folder, explorer.scene_file))

    async def sample_scene(request: Request):
        seed = _int((await _json(request)).get("seed", 0), "seed")
        return JSONResponse(await run_in_threadpool(explorer.sample_scene, seed))

    async def refused(request: Request, e: NinlabError):
        return JSONResponse({"error": str(e)}, status_code=413 if isinstance(e, Refused) else 400)

    routes = [
        Route("/", page),
        Route("/api/about", about),
        Route("/api/model", model),
        Route("/api/picture", picture, methods=["POST"]),
        Route("/api/test-picture", test_picture, methods=["POST"]),
        Route("/api/picture/{pid}/class/{c:int}", class_map),
        Route("/api/picture/{pid}/layer", layer),
        Route("/api/picture/{pid}/unit", unit),
        Route("/api/scene", scene, methods=["POST"]),
        Route("/api/sample-scene", sample_scene, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={NinlabError: refused})


async def _with_upload(request: Request, folder: Path, read) -> dict:
    """Save the request's body in `folder` under a random name, `read(path, name)` it on a
    worker thread, and remove it."""
    name = Path(unquote(request.headers.get("x-filename", "") or "upload")).name[:200] or "upload"
    size = int(request.headers.get("content-length") or 0)
    if size > UPLOAD_LIMIT:
        raise Refused(_too_large(name, size))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > UPLOAD_LIMIT:
            raise Refused(_too_large(name, len(body)))
    suffix = Path(name).suffix.lower()
    path = folder / (secrets.token_hex(8) + (suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix)
                                             else ""))  # fmt: skip
    path.write_bytes(bytes(body))
    try:
        return await run_in_threadpool(read, path, name)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _too_large(name: str, size: int) -> str:
    return (f"{name} is over {UPLOAD_LIMIT / 2**20:.0f} MB ({size / 2**20:.1f} MB or more), the "
            "most the page takes; make it smaller first.")  # fmt: skip


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise NinlabError("the request's body is not JSON.") from None
    if not isinstance(body, dict):
        raise NinlabError("the request's body is not a JSON object.")
    return body


def _int(value, what: str, none: bool = False) -> int | None:
    if value is None and none:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NinlabError(f"{what} must be a whole number, not {value!r}.") from None
