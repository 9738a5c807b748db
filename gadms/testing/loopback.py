"""Loopback stand-ins for a captioning server and a web of images, for
tests and ``benchmarks/corpus_scale.py``: nothing leaves 127.0.0.1."""
import base64
import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Union

import cv2
import numpy as np

from gadms.corpus.captioners import PROMPT

_TEMPLATE_AT = PROMPT.index('{template}')


class _Backlogged(ThreadingHTTPServer):
    # the default backlog of 5 refuses connections when a pool of Ray
    # actors opens dozens at once
    request_queue_size = 256


class LoopbackServer:
    """A threading HTTP server for ``handler`` (a
    ``BaseHTTPRequestHandler`` class) on a free loopback port (``base``),
    served from a daemon thread."""

    def __init__(self, handler: type) -> None:
        self.httpd = _Backlogged(('127.0.0.1', 0), handler)
        self.base = f'http://127.0.0.1:{self.httpd.server_port}'
        threading.Thread(target=self.httpd.serve_forever,
                         daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeCaptionServer(LoopbackServer):
    """An OpenAI-compatible chat-completions endpoint (``url``) that
    answers by the image's SHA-1: ``scripts[digest]`` lists one answer per
    request of that image (a str, or an int: that HTTP error); past its
    script, or without one, the caption is a sentence made of the digest
    and the template, so the same request always gets the same caption.
    ``requests`` counts the requests per digest. Asked for ``logprobs``,
    it splits the answer into tokens of 3 characters (the last shorter)
    and gives token ``k`` the log-probability ``-0.05 * (k % 4)``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.scripts: Dict[str, List[Union[str, int]]] = {}
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(
                    int(self.headers['Content-Length'])))
                text, image = body['messages'][0]['content']
                digest = hashlib.sha1(base64.b64decode(
                    image['image_url']['url'].split(',', 1)[1])).hexdigest()
                time.sleep(delay)
                with server.lock:
                    step = server.requests[digest]
                    server.requests[digest] += 1
                script = server.scripts.get(digest, [])
                answer = script[step] if step < len(script) else (
                    f'A person {digest[:8]} dressed as in "'
                    f'{text["text"][_TEMPLATE_AT:-1]}" walks by.')
                if isinstance(answer, int):
                    self.send_error(answer)
                    return
                choice = dict(message=dict(content=answer))
                if body.get('logprobs'):
                    choice['logprobs'] = dict(content=[
                        dict(token=answer[k:k + 3],
                             logprob=-0.05 * (k // 3 % 4))
                        for k in range(0, len(answer), 3)])
                _send(self, 200, json.dumps(dict(
                    choices=[choice])).encode())

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = self.base + '/v1'


def _send(handler: BaseHTTPRequestHandler, status: int, payload: bytes,
          content_type: str = 'application/json') -> None:
    handler.send_response(status)
    handler.send_header('Content-Type', content_type)
    handler.send_header('Content-Length', str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def scene(index: int, height: int = 320, width: int = 240) -> bytes:
    """A JPEG scene: a grey background and one person-shaped block
    (2.5:1) in a colour and place drawn from ``index``."""
    rng = np.random.default_rng(index)
    image = np.full((height, width, 3), 90, np.uint8)
    box_w = int(rng.integers(90, 110))
    box_h = int(box_w * 2.5)
    x, y = int(rng.integers(0, width - box_w)), int(rng.integers(
        0, height - box_h))
    image[y:y + box_h, x:x + box_w] = rng.integers(150, 256, 3)
    image[y + box_h // 2:y + box_h, x:x + box_w] = rng.integers(0, 60, 3)
    return cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY,
                                        90])[1].tobytes()


class SceneWeb(LoopbackServer):
    """Serves ``/scene/<n>.jpg`` (:func:`scene`), and ``/missing/<n>`` as
    HTTP 404: a synthetic web for the download stage. ``requests`` counts
    the requests per path; each answer waits ``delay`` seconds first."""

    def __init__(self, make_scene: Callable[[int], bytes] = scene,
                 delay: float = 0.0) -> None:
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):

            def do_GET(self):  # noqa: N802 (http.server's name)
                with web.lock:
                    web.requests[self.path] += 1
                if delay:
                    time.sleep(delay)
                kind, _, name = self.path.strip('/').partition('/')
                if kind == 'scene':
                    _send(self, 200, make_scene(int(name.split('.')[0])),
                          'image/jpeg')
                else:
                    _send(self, 404, b'', 'text/plain')

            def log_message(self, *args):
                pass

        super().__init__(Handler)
