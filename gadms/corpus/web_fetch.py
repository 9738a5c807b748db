"""Fetching web images with bounded requests, many at a time on asyncio.

Every request has a deadline for the whole answer (connection, redirects
and last byte) and a size cap; transient failures (HTTP 429 and 5xx,
timeouts, dropped connections) are retried; at most ``max_redirects``
redirects are followed, only to ``http`` and ``https``, and private headers
(e.g. an ``Authorization`` for a private mirror) are never sent to another
origin; no cookie is stored. An image whose header declares more than
``max_pixels`` pixels is not decoded.

One event loop runs ``DownloadOptions.threads`` requests at a time over one
aiohttp session: per image it costs about half the CPU of a thread per
request with ``urllib`` (docs/benchmarks.md), which is what bounds a
download node. A small image is checked on the event loop; a large one
(or one to resize) is decoded in a small thread pool (OpenCV releases the
GIL), so that it does not stall the requests in flight.
"""
import asyncio
import io
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, Iterable, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from gadms.common.image_limits import (DEFAULT_MAX_PIXELS, ImageLoadError,
                                       check_decoded_size)
from .bounded_http import AnswerTooLarge

# headers that identify the requester: kept only on the URL's own origin
PRIVATE_HEADERS = ('authorization', 'cookie', 'proxy-authorization')
REDIRECT_CODES = (301, 302, 303, 307, 308)
READ_CHUNK = 1 << 16
# the EXIF tag OpenCV turns an image by, and its values of a quarter turn
# (width and height swap)
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)
# threads decoding images beside the event loop of one download task, and
# the largest answer checked on the loop itself: a small JPEG's check
# (under 0.1 ms at 1/8 scale) costs less than a hand-over to a thread,
# whose wake-up delays the next requests when few are in flight
DECODE_THREADS = 2
INLINE_DECODE_BYTES = 256 << 10


@dataclass
class DownloadOptions:
    """How each image is fetched.

    Args:
        timeout (float): Seconds for a whole request, connection to last
            byte, redirects included.
        max_bytes (int): Largest answer read.
        retries (int): Further attempts after a transient failure, waiting
            ``backoff * 2 ** attempt`` seconds between them.
        max_redirects (int): Redirects followed per request.
        max_pixels (int): Largest image decoded (width x height, read from
            the encoded header first).
        resize_max_side (int, optional): Shrink images whose longer side
            exceeds this (re-encoded as JPEG, quality 95); None keeps the
            originals.
        headers (dict): Extra request headers; ``Authorization`` and
            cookies are dropped when a redirect leaves the URL's origin.
        threads (int): Requests in flight per download task (the name is
            the command line's ``--threads``; they are asyncio requests).
        user_agent (str): The ``User-Agent`` sent (name your crawler and a
            contact for the sites you fetch from).
    """

    timeout: float = 10.0
    max_bytes: int = 20 << 20
    retries: int = 2
    backoff: float = 0.5
    max_redirects: int = 3
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize_max_side: Optional[int] = None
    headers: Dict[str, str] = field(default_factory=dict)
    threads: int = 64
    user_agent: str = 'gadms-corpus-downloader (research dataset builder)'


class Refused(ValueError):
    """A request or an answer that retrying cannot fix (its text is the
    status)."""


class HTTPStatus(Exception):
    """An answer with a status other than 2xx (or a redirect followed)."""

    def __init__(self, code: int) -> None:
        super().__init__(f'http {code}')
        self.code = code


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname or '', parts.port


def _check_scheme(url: str, refusal: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
        raise Refused(refusal)


async def _read_capped(response, max_bytes: int) -> bytes:
    """The body of ``response``, refused past ``max_bytes`` (announced or
    read)."""
    if response.content_length is not None and \
            response.content_length > max_bytes:
        raise AnswerTooLarge(f'answer longer than {max_bytes} bytes')
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(f'answer longer than {max_bytes} bytes')
        chunks.append(chunk)
    return b''.join(chunks)


async def fetch(session, url: str, options: DownloadOptions) -> bytes:
    """The body at ``url`` (one attempt, redirects followed by hand so that
    each hop's scheme and headers are checked; the caller bounds the time).

    Raises:
        Refused, HTTPStatus, AnswerTooLarge, TimeoutError,
        aiohttp.ClientError: see :func:`fetch_image` for the status of
        each.
    """
    _check_scheme(url, 'not an http(s) URL')
    private = {name: value for name, value in options.headers.items()
               if name.lower() in PRIVATE_HEADERS}
    public = {name: value for name, value in options.headers.items()
              if name not in private}
    public['User-Agent'] = options.user_agent
    for _ in range(options.max_redirects + 1):
        async with session.get(url, allow_redirects=False,
                               headers={**public, **private}) as response:
            location = response.headers.get('Location')
            if response.status in REDIRECT_CODES and location:
                following = urllib.parse.urljoin(url, location)
                _check_scheme(following, 'redirect to a non-http URL')
                if _origin(following) != _origin(url):
                    private = {}  # once off the origin, never sent again
                url = following
                continue
            if not 200 <= response.status < 300:
                raise HTTPStatus(response.status)
            return await _read_capped(response, options.max_bytes)
    raise Refused('too many redirects')


def _transient(err: Exception) -> bool:
    import aiohttp
    if isinstance(err, HTTPStatus):
        return err.code == 429 or err.code >= 500
    if isinstance(err, aiohttp.InvalidURL):
        return False
    return isinstance(err, (TimeoutError, aiohttp.ClientError, OSError))


def _status(err: Exception) -> str:
    import aiohttp
    if isinstance(err, (Refused, HTTPStatus)):
        return str(err)
    if isinstance(err, aiohttp.InvalidURL):
        return 'invalid URL'
    if isinstance(err, AnswerTooLarge):
        return 'too large'
    if isinstance(err, TimeoutError):
        return 'timeout'
    if isinstance(err, (aiohttp.ClientError, OSError)):
        return 'connection error'
    raise err


def _checked_jpeg_size(body: bytes) -> Optional[Tuple[int, int]]:
    """A JPEG's (width, height) as OpenCV's colour decode gives it (EXIF
    orientation applied), read from its header, once a decode at 1/8
    scale has checked its data (a sixth of a full decode's CPU: libjpeg
    still reads every coefficient, and fails where a full decode fails);
    None when PIL does not read it as a JPEG.

    Raises:
        Refused: OpenCV does not decode it.
    """
    try:
        with Image.open(io.BytesIO(body)) as header:
            if header.format != 'JPEG':
                return None
            width, height = header.size
            if header.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS:
                width, height = height, width
    except Exception:  # not a header PIL knows: the full decode decides
        return None
    if cv2.imdecode(np.frombuffer(body, np.uint8),
                    cv2.IMREAD_REDUCED_COLOR_8) is None:
        raise Refused('not an image')
    return width, height


def decode(body: bytes, options: DownloadOptions) -> Tuple[bytes, int, int]:
    """Check and decode the body: (bytes to keep, width, height).

    Raises:
        ImageLoadError: its header declares more than ``max_pixels``.
        Refused: it is not an image OpenCV decodes.
    """
    check_decoded_size(body, options.max_pixels, 'image')
    if not options.resize_max_side:
        size = _checked_jpeg_size(body)
        if size is not None:
            return (body, ) + size
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise Refused('not an image')
    height, width = image.shape[:2]
    side = options.resize_max_side
    if side and max(height, width) > side:
        scale = side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)),
                                   max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        body = cv2.imencode('.jpg', image,
                            [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return body, width, height


async def fetch_image(session, url: str, options: DownloadOptions,
                      decoder: ThreadPoolExecutor) -> dict:
    """Fetch and check one image: ``dict(status, image, width, height)``;
    ``status`` is ``'ok'`` or the reason of the failure (``http 404``,
    ``timeout``, ``too large``, ``not an image``, ``oversized image``,
    ``too many redirects``, ``redirect to a non-http URL``, ``invalid
    URL``, ``connection error``...)."""
    failed = dict(image=None, width=None, height=None)
    for attempt in range(options.retries + 1):
        if attempt:
            await asyncio.sleep(options.backoff * 2**(attempt - 1))
        try:
            async with asyncio.timeout(options.timeout):
                body = await fetch(session, url, options)
            break
        except Exception as err:  # aiohttp and sockets raise many kinds
            if not _transient(err) or attempt == options.retries:
                return dict(failed, status=_status(err))
    try:
        if len(body) <= INLINE_DECODE_BYTES and not options.resize_max_side:
            image, width, height = decode(body, options)
        else:
            image, width, height = await asyncio.get_running_loop(
            ).run_in_executor(decoder, decode, body, options)
    except ImageLoadError:
        return dict(failed, status='oversized image')
    except Refused as err:
        return dict(failed, status=str(err))
    return dict(status='ok', image=image, width=width, height=height)


def _session(options: DownloadOptions):
    """One aiohttp session for a task's requests: ``threads`` connections,
    no cookie jar, proxies from the environment (as ``urllib``). aiohttp
    reads the environment again for each request when it trusts it, which
    cost 0.4 ms of CPU per image (as much as the rest of a request): it is
    asked to only when the environment names a proxy."""
    import aiohttp
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=options.threads),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=bool(urllib.request.getproxies()),
        timeout=aiohttp.ClientTimeout(total=None))


async def fetch_images(urls: Iterable[Tuple[int, str]],
                       options: DownloadOptions
                       ) -> AsyncIterator[Tuple[int, dict]]:
    """``(index, fetch_image(url))`` for each ``(index, url)``, in the
    order the answers finish, with ``options.threads`` requests in
    flight (the next URL is read only when one finishes)."""
    urls = iter(urls)
    with ThreadPoolExecutor(DECODE_THREADS) as decoder:
        async with _session(options) as session:

            async def one(index, url):
                return index, await fetch_image(session, url, options,
                                                decoder)

            in_flight = set()
            while True:
                for index, url in urls:
                    in_flight.add(asyncio.ensure_future(one(index, url)))
                    if len(in_flight) >= options.threads:
                        break
                if not in_flight:
                    return
                done, in_flight = await asyncio.wait(
                    in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()


def download_image(url: str, options: DownloadOptions) -> dict:
    """:func:`fetch_image` of one URL, from synchronous code."""

    async def run() -> dict:
        async for _, result in fetch_images([(0, url)], options):
            return result

    return asyncio.run(run())
