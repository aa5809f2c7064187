"""A fake Zoho on loopback: the accounts server's token endpoint and the CRM
users API, enough for the SDK's own token flow. A real HTTP server in a thread.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeZoho:
    """Serves ``POST /oauth/v2/token``, ``GET /crm/v8/users`` and ``GET /crm/v8/org``.

    The SDK names a token's user ``{email}:{zgid}`` from the last two.

    Each token request answers a new access token (``access-1``, ``access-2``,
    ...) that expires in ``expires_in_sec`` seconds, for the refresh token
    ``refresh_token`` and client ``client_id``/``client_secret`` only.
    ``token_requests`` records the form bodies received; ``crm_requests``
    the Authorization headers of CRM calls.
    """

    def __init__(self, client_id, client_secret, refresh_token, user_email, expires_in_sec=3600):
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.user_email = user_email
        self.expires_in_sec = expires_in_sec
        self.zgid = "70001"
        self.token_requests = []
        self.crm_requests = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if urllib.parse.urlsplit(self.path).path != "/oauth/v2/token":
                    return self._answer(404, {"error": "not_found"})
                with fake._lock:
                    fake.token_requests.append(form)
                    n = len(fake.token_requests)
                ok = (
                    form.get("grant_type") == "refresh_token"
                    and form.get("refresh_token") == fake.refresh_token
                    and form.get("client_id") == fake.client_id
                    and form.get("client_secret") == fake.client_secret
                )
                if not ok:
                    return self._answer(200, {"error": "invalid_code"})
                return self._answer(
                    200,
                    {
                        "access_token": "access-{}".format(n),
                        "expires_in": fake.expires_in_sec,
                        "api_domain": fake.crm_url,
                        "token_type": "Bearer",
                    },
                )

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                with fake._lock:
                    fake.crm_requests.append(self.headers.get("Authorization"))
                if url.path == "/crm/v8/org":
                    return self._answer(200, {"org": [{"id": "111", "zgid": fake.zgid}]})
                if url.path != "/crm/v8/users":
                    return self._answer(404, {"code": "INVALID_URL_PATTERN"})
                return self._answer(
                    200,
                    {
                        "users": [
                            {"id": "1000000000001", "email": fake.user_email, "full_name": "Test User"}
                        ],
                        "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False},
                    },
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.crm_url = "http://127.0.0.1:{}".format(self._server.server_address[1])
        self.accounts_url = self.crm_url + "/oauth/v2/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
