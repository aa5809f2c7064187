// Managed refresh: the store refreshes before the SDK would, once for every
// process sharing the prefix; the opt-out leaves the refresh to the SDK.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { test } from "node:test";

import { sdk, pkg } from "./under_test.js";

import { FakeZoho } from "./fake_zoho.js";
import { PACKAGE_DIR, makeStore, newPrefix } from "./helpers.js";

const { OAuthToken, UserSignature } = sdk;
const { RefreshError } = pkg;

const CLIENT_ID = "1000.FLEET";
const CLIENT_SECRET = "fleet-client-secret";
const REFRESH_TOKEN = "1000.fleet-refresh";
const USER = "fleet@example.com";

async function fakeZoho(t) {
  const zoho = await new FakeZoho({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshToken: REFRESH_TOKEN,
    userEmail: USER,
    expiresInSec: 3600,
  }).start();
  t.after(() => zoho.stop());
  return zoho;
}

/** Saves, under `prefix`, `user`'s token whose access token expired a minute ago. */
async function saveExpired(prefix, zoho, user = USER, refreshToken = REFRESH_TOKEN) {
  const token = new OAuthToken(CLIENT_ID, CLIENT_SECRET, null, refreshToken);
  token.setUserSignature(new UserSignature(user));
  token.setAccessToken("1000.expired-access");
  token.setExpiresIn(String(Date.now() - 60_000));
  token.setAPIDomain(zoho.crmUrl); // not Zoho's: the SDK environment's accounts URL is used
  await makeStore(prefix, { managedRefresh: false }).saveToken(token);
  // The worker's starter token: valid, so initialize refreshes nothing.
  const starter = new OAuthToken(CLIENT_ID, CLIENT_SECRET, null, "1000.starter-refresh");
  starter.setUserSignature(new UserSignature("starter@example.com"));
  starter.setAccessToken("1000.starter-access");
  starter.setExpiresIn(String(Date.now() + 3_600_000));
  starter.setAPIDomain(zoho.crmUrl);
  await makeStore(prefix, { managedRefresh: false }).saveToken(starter);
  return token;
}

/** Starts `count` workers; resolves once each has initialized the SDK. */
async function startWorkers(count, prefix, zoho, calls, managed) {
  const workers = [];
  for (let i = 0; i < count; i++) {
    const child = spawn(
      process.execPath,
      [join(PACKAGE_DIR, "test", "sdk_worker.js"), prefix, zoho.accountsUrl, zoho.crmUrl, USER, String(calls), String(managed)],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: child.stdout });
    const next = lines[Symbol.asyncIterator]();
    workers.push({ child, next });
  }
  for (const worker of workers) {
    const { value } = await worker.next.next();
    assert.equal(value, "ready");
  }
  return workers;
}

/** Tells every worker to go at once; resolves to each one's access tokens. */
async function go(workers) {
  for (const { child } of workers) child.stdin.write("go\n");
  return Promise.all(
    workers.map(async ({ child, next }) => {
      const { value } = await next.next();
      const [code] = await once(child, "exit");
      assert.equal(code, 0, "a worker failed");
      return JSON.parse(value);
    }),
  );
}

test("4 processes x 5 concurrent getToken on an expired token make exactly 1 accounts call", { timeout: 120_000 }, async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t);
  const saved = await saveExpired(prefix, zoho);
  const workers = await startWorkers(4, prefix, zoho, 5, true);
  assert.equal(zoho.tokenRequests.length, 0, "initialize refreshed");

  const answers = await go(workers);
  assert.deepEqual(answers, Array.from({ length: 4 }, () => Array(5).fill("access-1")));
  assert.equal(zoho.tokenRequests.length, 1, "more than one refresh for the fleet");
  // The store's refresh (form-encoded, from Rust), not the SDK's (multipart).
  assert.equal(zoho.tokenRequests[0].kind, "form");
  assert.equal(zoho.tokenRequests[0].refresh_token, REFRESH_TOKEN);

  const stored = await makeStore(prefix, { managedRefresh: false }).findTokenById(saved.getId());
  assert.equal(stored.getAccessToken(), "access-1");
  assert.ok(Number(stored.getExpiresIn()) > Date.now() + 3_000_000);
});

test("with managedRefresh false the SDK refreshes by itself", { timeout: 120_000 }, async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t);
  const saved = await saveExpired(prefix, zoho);
  const workers = await startWorkers(1, prefix, zoho, 1, false);
  const answers = await go(workers);
  assert.deepEqual(answers, [["access-1"]]);
  // The SDK's own refresh: its multipart POST, then its save through the store.
  assert.deepEqual(
    zoho.tokenRequests.map((request) => request.kind),
    ["multipart"],
  );
  const stored = await makeStore(prefix, { managedRefresh: false }).findTokenById(saved.getId());
  assert.equal(stored.getAccessToken(), "access-1");
});

test("a rejected refresh is a RefreshError, and the stored token is unchanged", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t);
  const saved = await saveExpired(prefix, zoho, "revoked@example.com", "1000.revoked-refresh");
  const store = makeStore(prefix, { accountsUrl: zoho.accountsUrl });
  const query = new OAuthToken();
  query.setUserSignature(new UserSignature("revoked@example.com"));
  await assert.rejects(store.findToken(query), (error) => {
    assert.ok(error instanceof RefreshError);
    assert.equal(error.code, "TOKEN_REFRESH_REJECTED");
    assert.equal(error.kind, "rejected");
    assert.equal(error.retryable, false);
    assert.match(error.message, /findToken/);
    assert.match(error.message, /invalid_code/);
    for (const secret of [CLIENT_SECRET, "1000.revoked-refresh", "1000.expired-access"]) {
      assert.ok(!error.message.includes(secret) && !error.stack.includes(secret));
    }
    return true;
  });
  assert.equal(zoho.tokenRequests.length, 1);
  const stored = await makeStore(prefix, { managedRefresh: false }).findTokenById(saved.getId());
  assert.equal(stored.getAccessToken(), "1000.expired-access");
  assert.equal(stored.getExpiresIn(), saved.getExpiresIn());
});

test("outside an initialized SDK, a token of no Zoho data center needs accountsUrl", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t);
  await saveExpired(prefix, zoho);
  const query = () => {
    const token = new OAuthToken();
    token.setUserSignature(new UserSignature(USER));
    return token;
  };
  // No SDK environment, no accountsUrl: nowhere to send the secrets, nothing sent.
  await assert.rejects(makeStore(prefix).findToken(query()), (error) => {
    assert.ok(error instanceof RefreshError);
    assert.equal(error.kind, "invalid_input");
    return true;
  });
  assert.equal(zoho.tokenRequests.length, 0);
  // With accountsUrl, the store refreshes there.
  const found = await makeStore(prefix, { accountsUrl: zoho.accountsUrl }).findToken(query());
  assert.equal(found.getAccessToken(), "access-1");
  assert.equal(zoho.tokenRequests.length, 1);
});

test("a grant token that matches nothing is exchanged once, and the saved token answered", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await new FakeZoho({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshToken: REFRESH_TOKEN,
    userEmail: USER,
    grantToken: "1000.fleet-grant",
  }).start();
  t.after(() => zoho.stop());
  const store = makeStore(prefix, { accountsUrl: zoho.accountsUrl });
  const query = () => new OAuthToken(CLIENT_ID, CLIENT_SECRET, "1000.fleet-grant", null);
  const [first, second] = await Promise.all([store.findToken(query()), store.findToken(query())]);
  assert.equal(first.getAccessToken(), "access-1");
  assert.equal(second.getAccessToken(), "access-1");
  assert.equal(first.getRefreshToken(), REFRESH_TOKEN);
  assert.equal(first.getId(), second.getId());
  assert.deepEqual(
    zoho.tokenRequests.map((request) => request.grant_type),
    ["authorization_code"],
  );
  // Saved: another instance finds it by the grant token, and nothing is exchanged again.
  const again = await makeStore(prefix, { accountsUrl: zoho.accountsUrl }).findToken(query());
  assert.equal(again.getId(), first.getId());
  assert.equal(zoho.tokenRequests.length, 1);
});
