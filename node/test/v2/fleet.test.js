// One refresh per fleet for v2 SDK users: processes of the v2 SDK, and
// processes of the v8 SDK sharing the prefix (a fleet half-way from one to
// the other), meet one expired token; the accounts server sees one refresh.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";

import { PACKAGE_DIR, newPrefix } from "../helpers.js";
import { EMAIL, REFRESH_TOKEN, fakeZoho, makeStore, sdkToken } from "./support.js";
import { sdk } from "./under_test.js";

/**
 * Starts a worker: test/v2/worker.js (this application's v2 SDK) or
 * test/sdk_worker.js (the checkout's nodejs-sdk-8.0, its development copy,
 * with the checkout's package); resolves once it has initialized its SDK.
 */
async function start(kind, prefix, zoho, calls) {
  const v2 = kind === "v2";
  const script = v2 ? join(PACKAGE_DIR, "test", "v2", "worker.js") : join(PACKAGE_DIR, "test", "sdk_worker.js");
  const args = v2
    ? [prefix, zoho.accountsUrl, zoho.crmUrl, EMAIL, String(calls)]
    : [prefix, zoho.accountsUrl, zoho.crmUrl, EMAIL, String(calls), "true"];
  const env = { ...process.env };
  if (!v2) {
    delete env.ZTS_TEST_APP;
    delete env.ZTS_TEST_SDK;
  }
  const child = spawn(process.execPath, [script, ...args], { cwd: PACKAGE_DIR, env, stdio: ["pipe", "pipe", "inherit"] });
  const next = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { value } = await next.next();
  assert.equal(value, "ready", `a ${kind} worker did not start`);
  return { kind, child, next };
}

test("3 v2 processes and 2 v8 processes on one expired token make exactly 1 accounts call", { timeout: 120_000 }, async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t, 3600);
  const expired = sdkToken();
  expired.setAccessToken("1000.expired-access");
  expired.setExpiresIn(String(Date.now() - 60_000));
  await makeStore(prefix, { managedRefresh: false }).saveToken(new sdk.UserSignature(EMAIL), expired);
  // The v8 workers initialize with a valid token of another user.
  const starter = sdkToken("1000.starter-refresh");
  starter.setAccessToken("1000.starter-access");
  starter.setExpiresIn(String(Date.now() + 3_600_000));
  await makeStore(prefix, { managedRefresh: false }).saveToken(new sdk.UserSignature("starter@example.com"), starter);

  const workers = [];
  for (const kind of ["v2", "v8", "v2", "v8", "v2"]) workers.push(await start(kind, prefix, zoho, 3));
  assert.equal(zoho.tokenRequests.length, 0, "initialize refreshed");
  for (const { child } of workers) child.stdin.write("go\n");
  const answers = await Promise.all(
    workers.map(async ({ kind, child, next }) => {
      const { value } = await next.next();
      const [code] = await once(child, "exit");
      assert.equal(code, 0, `a ${kind} worker failed`);
      return JSON.parse(value);
    }),
  );
  // A v2 worker answers its token's access token, a v8 worker each getToken()'s.
  assert.deepEqual(answers.flat(), Array(3 + 2 * 3).fill("access-1"));
  assert.equal(zoho.tokenRequests.length, 1, "more than one refresh for the fleet");
  assert.equal(zoho.tokenRequests[0].kind, "form"); // the store's refresh, not an SDK's
  assert.equal(zoho.tokenRequests[0].refresh_token, REFRESH_TOKEN);
  // Every CRM call (3 by each v2 process) carried the refreshed token.
  assert.deepEqual(zoho.crmRequests, Array(3 * 3).fill("Zoho-oauthtoken access-1"));
});
