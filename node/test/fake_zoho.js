// A fake Zoho on loopback: the accounts server's token endpoint and the CRM
// users API, enough for the SDK's own token flow. A real HTTP server.

import { createServer } from "node:http";

/** The fields of a multipart/form-data body (the SDK's refresh posts one). */
function parseMultipart(body, contentType) {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) return {};
  const fields = {};
  for (const part of body.split(`--${boundary[1] ?? boundary[2]}`)) {
    const split = part.indexOf("\r\n\r\n");
    if (split < 0) continue;
    const name = /name="([^"]*)"/.exec(part.slice(0, split));
    if (name) fields[name[1]] = part.slice(split + 4).replace(/\r\n$/, "");
  }
  return fields;
}

/** The fields of a token request, multipart (the SDK) or form-encoded (the Rust crate). */
function parseForm(body, contentType = "") {
  if (contentType.startsWith("multipart/form-data")) return parseMultipart(body, contentType);
  return Object.fromEntries(new URLSearchParams(body));
}

/**
 * Serves `POST /oauth/v2/token`, `GET /crm/v{N}/users` and `GET /crm/v{N}/org`
 * (each SDK calls the API version of its name: v8, v7, v6).
 * The SDK names a token's user `{email}:{zgid}` from the last two.
 *
 * Each token request answers a new access token (`access-1`, `access-2`,
 * ...) that expires in `expiresInSec` seconds (a number, or a function of
 * the request's number, 1 for the first), for the refresh token
 * `refreshToken` and client `clientId`/`clientSecret` only. `tokenRequests`
 * A grant exchange (`authorization_code`) of `grantToken`, when one is
 * given, answers `refreshToken` with the access token. `tokenRequests`
 * records the fields received (and `kind`: multipart or form);
 * `crmRequests` the Authorization headers of CRM calls.
 */
export class FakeZoho {
  constructor({ clientId, clientSecret, refreshToken, userEmail, expiresInSec = 3600, grantToken = null }) {
    Object.assign(this, { clientId, clientSecret, refreshToken, userEmail, expiresInSec, grantToken });
    this.zgid = "70001";
    this.tokenRequests = [];
    this.crmRequests = [];
    this.server = createServer((request, response) => this.#handle(request, response));
  }

  /** A fake Zoho started for the test `t` (options as the constructor's), stopped after it. */
  static async forTest(t, options) {
    const zoho = await new FakeZoho(options).start();
    t.after(() => zoho.stop());
    return zoho;
  }

  /** Starts listening on a free loopback port. */
  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.crmUrl = `http://127.0.0.1:${this.server.address().port}`;
    this.accountsUrl = `${this.crmUrl}/oauth/v2/token`;
    return this;
  }

  /** Stops the server. */
  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }

  #answer(response, status, body) {
    const data = JSON.stringify(body);
    response.writeHead(status, {
      "Content-Type": "application/json;charset=UTF-8",
      "Content-Length": Buffer.byteLength(data),
    });
    response.end(data);
  }

  #handle(request, response) {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const url = new URL(request.url, "http://127.0.0.1");
      if (request.method === "POST" && url.pathname === "/oauth/v2/token") {
        const type = request.headers["content-type"] ?? "";
        const form = parseForm(Buffer.concat(chunks).toString("utf8"), type);
        this.tokenRequests.push({ ...form, kind: type.startsWith("multipart/") ? "multipart" : "form" });
        const n = this.tokenRequests.length;
        if (form.grant_type === "authorization_code" && this.grantToken) {
          if (form.code !== this.grantToken || form.client_id !== this.clientId || form.client_secret !== this.clientSecret) {
            return this.#answer(response, 200, { error: "invalid_code" });
          }
          return this.#answer(response, 200, {
            access_token: `access-${n}`,
            refresh_token: this.refreshToken,
            expires_in: 3600,
            api_domain: this.crmUrl,
            token_type: "Bearer",
          });
        }
        const ok =
          form.grant_type === "refresh_token" &&
          form.refresh_token === this.refreshToken &&
          form.client_id === this.clientId &&
          form.client_secret === this.clientSecret;
        if (!ok) return this.#answer(response, 200, { error: "invalid_code" });
        return this.#answer(response, 200, {
          access_token: `access-${n}`,
          expires_in: typeof this.expiresInSec === "function" ? this.expiresInSec(n) : this.expiresInSec,
          api_domain: this.crmUrl,
          token_type: "Bearer",
        });
      }
      if (request.method === "GET" && /^\/crm\/v\d+(\.\d+)?\/org$/.test(url.pathname)) {
        this.crmRequests.push(request.headers.authorization);
        return this.#answer(response, 200, { org: [{ id: "111", zgid: this.zgid }] });
      }
      if (request.method === "GET" && /^\/crm\/v\d+(\.\d+)?\/users$/.test(url.pathname)) {
        this.crmRequests.push(request.headers.authorization);
        return this.#answer(response, 200, {
          users: [{ id: "1000000000001", email: this.userEmail, full_name: "Test User" }],
          info: { per_page: 200, count: 1, page: 1, more_records: false },
        });
      }
      return this.#answer(response, 404, { code: "INVALID_URL_PATTERN" });
    });
  }
}
