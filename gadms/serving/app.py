"""The browser app of ``tools/serve.py``: one static page and a JSON API
over :class:`~gadms.serving.service.GalleryService` (FastAPI).

Gradio, the field's usual demo stack, is not used: every Gradio release
that pip can resolve against the pinned stack is either years old (3.x)
or requires ``pillow<13`` (and ``tomlkit<0.15``), while torchvision and
the rest of the stack here run on pillow 13 (docs/get_started.md).

=====================  ====================================================
``GET /``              the page
``GET /api/info``      the gallery's size and kind, the limits
``GET /api/search``    ``q``, ``k``: the best images
``GET /api/image/N``   image ``N`` (from inside the gallery folder only)
``GET /api/words``     ``row``, ``q``: each word's part in that match
``POST /api/folders``  ``{"folder": ...}``: index a folder of the gallery
``POST /api/upload``   ``?name=``, the image as the body: add it
=====================  ====================================================

Every error is JSON ``{"error": one sentence}`` with its status; a
traceback goes to the server's log, never to the page.
"""
import asyncio
import json
import logging
import os.path as osp

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .service import GalleryService, ServiceError

logger = logging.getLogger(__name__)
PAGE = osp.join(osp.dirname(__file__), 'page.html')


async def _answer(future) -> object:
    return await asyncio.wrap_future(future)


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit``
    bytes: an oversized upload is never held whole."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServiceError(f'the upload is larger than the limit of '
                               f'{limit} bytes', 413)
        chunks.append(chunk)
    return b''.join(chunks)


def create_app(service: GalleryService, title: str = 'gadms search'
               ) -> FastAPI:
    """The app serving ``service``."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None,
                  openapi_url=None)
    with open(PAGE, encoding='utf-8') as f:
        page = f.read().replace('{{title}}', title)

    @app.exception_handler(ServiceError)
    async def refused(request: Request, err: ServiceError):
        return JSONResponse({'error': str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError):
        fields = ', '.join(str(e['loc'][-1]) for e in err.errors())
        return JSONResponse({'error': f'the request is malformed ({fields})'},
                            status_code=400)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception):
        logger.exception('%s %s failed', request.method, request.url.path)
        return JSONResponse(
            {'error': f'the server failed ({type(err).__name__}); its log '
             'has the details'}, status_code=500)

    @app.get('/', response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get('/api/info')
    async def info() -> dict:
        index = service.index
        return dict(images=len(index), has_pids=index.pids is not None,
                    can_grow=index.root is not None and index.pids is None,
                    max_topk=min(service.limits.max_topk, len(index)),
                    max_query_chars=service.limits.max_query_chars,
                    max_upload_bytes=service.limits.max_upload_bytes)

    @app.get('/api/search')
    async def search(q: str, k: int = 10) -> dict:
        return dict(query=q, results=await _answer(service.search(q, k)))

    @app.get('/api/image/{row}')
    async def image(row: int) -> Response:
        data, media_type = await asyncio.to_thread(service.image, row)
        return Response(data, media_type=media_type)

    @app.get('/api/words')
    async def words(row: int, q: str) -> dict:
        return dict(row=row, words=await _answer(service.words(row, q)))

    @app.post('/api/folders')
    async def add_folder(request: Request) -> dict:
        body = await read_capped(request, 4096)
        try:
            folder = json.loads(body)['folder']
        except (ValueError, KeyError, TypeError):
            raise ServiceError('send {"folder": "a folder of the gallery"}')
        if not isinstance(folder, str):
            raise ServiceError('the folder must be a string')
        return await _answer(service.add_folder(folder))

    @app.post('/api/upload')
    async def upload(request: Request, name: str) -> dict:
        data = await read_capped(request, service.limits.max_upload_bytes)
        return await _answer(service.add_upload(name, data))

    return app
