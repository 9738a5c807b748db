"""OpenAIChatCaptioner against misbehaving servers on 127.0.0.1."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gadms.corpus import CaptionError, OpenAIChatCaptioner

GOOD = json.dumps(dict(choices=[dict(message=dict(
    content='A man in a red coat walks with a black bag.'))])).encode()


class Server:
    """Answers every POST with ``behaviour(handler, request_number)``;
    records the Authorization header of each request."""

    def __init__(self, behaviour):
        self.requests, self.auth = 0, []
        server = self

        class Handler(BaseHTTPRequestHandler):

            def do_POST(self):  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers['Content-Length']))
                server.auth.append(self.headers.get('Authorization'))
                server.requests += 1
                behaviour(self, server.requests)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_port}/v1'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def _send(handler, body: bytes, length=None, drip=0.0):
    handler.send_response(200)
    handler.send_header('Content-Length', str(length or len(body)))
    handler.end_headers()
    for start in range(0, len(body), 1 if drip else len(body)):
        handler.wfile.write(body[start:start + (1 if drip else len(body))])
        handler.wfile.flush()
        time.sleep(drip)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv('CAPTION_KEY', 'secret')
    return 'CAPTION_KEY'


def test_redirects_are_refused_and_the_key_stays_home(key):
    elsewhere = Server(lambda h, n: _send(h, GOOD))

    def redirect(handler, number):
        handler.send_response(302)
        handler.send_header('Location', elsewhere.url + '/chat/completions')
        handler.send_header('Content-Length', '0')
        handler.end_headers()

    server = Server(redirect)
    captioner = OpenAIChatCaptioner(server.url, 'm', api_key_env=key,
                                    retries=2, backoff=0)
    with pytest.raises(CaptionError, match='HTTP 302 .*not followed'):
        captioner(b'png', 'template')
    assert server.auth == ['Bearer secret']  # asked once, not retried
    assert elsewhere.requests == 0
    server.close()
    elsewhere.close()


def test_a_dripping_answer_is_cut_at_the_deadline():
    server = Server(lambda h, n: _send(h, GOOD, drip=0.05))
    captioner = OpenAIChatCaptioner(server.url, 'm', timeout=0.5, retries=0)
    start = time.monotonic()
    with pytest.raises(CaptionError, match='TimeoutError'):
        captioner(b'png', 'template')
    # the whole answer would take len(GOOD) * 0.05 s (several seconds)
    assert time.monotonic() - start < 1.5
    server.close()


def test_a_short_answer_is_retried():
    server = Server(lambda h, n: _send(h, GOOD[:20], length=len(GOOD))
                    if n == 1 else _send(h, GOOD))
    captioner = OpenAIChatCaptioner(server.url, 'm', retries=1, backoff=0)
    assert captioner(b'png', 'template').startswith('A man in a red coat')
    assert server.requests == 2
    server.close()


def test_oversized_or_non_string_answers_fail():
    server = Server(lambda h, n: _send(h, json.dumps(dict(choices=[dict(
        message=dict(content=42))])).encode()))
    captioner = OpenAIChatCaptioner(server.url, 'm', retries=1, backoff=0)
    with pytest.raises(CaptionError, match='content is a int'):
        captioner(b'png', 'template')
    assert server.requests == 1
    server.close()
    server = Server(lambda h, n: _send(h, GOOD))
    captioner = OpenAIChatCaptioner(server.url, 'm', retries=0,
                                    max_response_bytes=40)
    with pytest.raises(CaptionError, match='longer than 40 bytes'):
        captioner(b'png', 'template')
    server.close()
