"""The browser app (:mod:`gadms.serving`) on a free loopback port, served
by uvicorn from a thread, and a client for its JSON API: for the tests
and ``benchmarks/serve_load.py``."""
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional, Tuple

# seconds to wait for the server to start or stop
START_TIMEOUT = 30


class AppServer:
    """Serve ``app`` (an ASGI app) on ``127.0.0.1`` at a free port
    (``base``) until :meth:`close`."""

    def __init__(self, app) -> None:
        import uvicorn
        self.server = uvicorn.Server(uvicorn.Config(
            app, host='127.0.0.1', port=0, log_level='warning'))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError('the app server did not start')
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f'http://127.0.0.1:{port}'

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT)


def fetch(base: str, path: str, body: Any = None,
          data: Optional[bytes] = None, timeout: float = 120,
          **params) -> Tuple[int, Any]:
    """``GET base + path?params``, or a POST of ``body`` (as JSON) or of
    ``data`` (raw bytes). Returns the status and the JSON answer (the raw
    bytes when the answer is not JSON)."""
    url = base + path + ('?' + urllib.parse.urlencode(params)
                         if params else '')
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, content = response.status, response.read()
            kind = response.headers.get('Content-Type', '')
    except urllib.error.HTTPError as err:
        status, content = err.code, err.read()
        kind = err.headers.get('Content-Type', '')
    return status, json.loads(content) if kind.startswith(
        'application/json') else content
