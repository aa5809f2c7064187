"""A fake Zoho on loopback: the accounts server's token endpoint and the CRM
users API, enough for the SDK's own token flow. A real HTTP server in a thread.
"""

import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The CRM API paths the SDK calls to name a token's user, at any API version.
_CRM_PATH = re.compile(r"/crm/v[0-9]+/(users|org)")


class FakeZoho:
    """Serves ``POST /oauth/v2/token``, ``GET /crm/v{N}/users`` and ``GET /crm/v{N}/org``.

    The SDK names a token's user ``{email}:{zgid}`` from the last two, at the
    API version of its package (v8 for zohocrmsdk8-0, v7 for zohocrmsdk7-0,
    v6 for zohocrmsdk6-0: tests/python-sdks runs them all), so any version is
    answered.

    Each token request answers a new access token (``access-1``, ``access-2``,
    ...) that expires in ``expires_in_sec`` seconds, for the refresh token
    ``refresh_token`` and client ``client_id``/``client_secret`` only, or for
    a grant code made by ``grant_code()`` (once: a used code is
    ``invalid_code``, as Zoho answers). Each answer waits ``delay`` seconds
    first, so that concurrent callers overlap. ``revoked``: refreshes are
    ``invalid_code``; ``throttled``: every token request is Zoho's
    ``Access Denied``. Errors come in the body with HTTP 200, as Zoho's do.

    ``token_requests`` records the form bodies received, ``token_agents``
    their User-Agent headers (the SDK's refresh is python-requests, the Rust
    crate's sends none); ``crm_requests`` the Authorization headers of CRM calls.
    """

    def __init__(self, client_id, client_secret, refresh_token, user_email, expires_in_sec=3600, delay=0.0):
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.user_email = user_email
        self.expires_in_sec = expires_in_sec
        self.delay = delay
        self.revoked = False
        self.throttled = False
        self.zgid = "70001"
        self.token_requests = []
        self.token_agents = []
        self.crm_requests = []
        self._codes = {}
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
                    fake.token_agents.append(self.headers.get("User-Agent"))
                    n = len(fake.token_requests)
                if fake.delay:
                    time.sleep(fake.delay)
                return self._answer(200, fake._token_answer(form, n))

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                with fake._lock:
                    fake.crm_requests.append(self.headers.get("Authorization"))
                crm = _CRM_PATH.fullmatch(url.path)
                if crm and crm.group(1) == "org":
                    return self._answer(200, {"org": [{"id": "111", "zgid": fake.zgid}]})
                if not crm:
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
        self._server.daemon_threads = True
        self.crm_url = "http://127.0.0.1:{}".format(self._server.server_address[1])
        self.accounts_url = self.crm_url + "/oauth/v2/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def grant_code(self):
        """A grant code this fake exchanges once, for its refresh token."""
        with self._lock:
            code = "1000.fake-grant-{}".format(len(self._codes) + 1)
            self._codes[code] = True
        return code

    @property
    def calls(self):
        """Token requests so far."""
        with self._lock:
            return len(self.token_requests)

    def _token_answer(self, form, n):
        if self.throttled:
            return {
                "error": "Access Denied",
                "error_description": "You have made too many requests continuously. Please try again after some time.",
            }
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return {"error": "invalid_client"}
        answer = {
            "access_token": "access-{}".format(n),
            "expires_in": self.expires_in_sec,
            "api_domain": self.crm_url,
            "token_type": "Bearer",
        }
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            with self._lock:
                fresh = self._codes.get(form.get("code"), False)
                if fresh:
                    self._codes[form["code"]] = False
            if not fresh:
                return {"error": "invalid_code"}
            return dict(answer, refresh_token=self.refresh_token)
        if grant_type == "refresh_token" and form.get("refresh_token") == self.refresh_token and not self.revoked:
            return answer
        return {"error": "invalid_code"}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
