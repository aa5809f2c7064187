"""A counting HTTP proxy on loopback in front of LocalStack: a store built
with ``endpoint_url=proxy.url`` sends its Secrets Manager calls through it,
so a test (or the benchmark) counts the API calls a store makes from
outside, as real requests, whatever language makes them.
"""

import collections
import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers a proxy does not forward.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class CountingProxy:
    """Forwards every request to ``target`` (``http://host:port``) and counts
    them by operation (the ``X-Amz-Target`` header, e.g.
    ``secretsmanager.GetSecretValue``)."""

    def __init__(self, target):
        parsed = urllib.parse.urlsplit(target)
        self._target = (parsed.hostname, parsed.port or 80)
        self._lock = threading.Lock()
        self._counts = collections.Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                operation = self.headers.get("X-Amz-Target") or "{} {}".format(self.command, self.path)
                with proxy._lock:
                    proxy._counts[operation.split(".", 1)[-1]] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                connection = http.client.HTTPConnection(*proxy._target, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:{}".format(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def counts(self):
        """Calls so far, by operation."""
        with self._lock:
            return dict(self._counts)

    def total(self):
        """Calls so far."""
        with self._lock:
            return sum(self._counts.values())

    def reset(self):
        with self._lock:
            self._counts.clear()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
