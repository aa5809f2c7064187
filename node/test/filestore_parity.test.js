// The six methods against the SDK's own FileStore: the same operations on
// both stores, and the same answers (ids aside: FileStore numbers them, this
// store generates random ones, so ids are compared through a name per token).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { sdk, pkg } from "./under_test.js";

import { makeStore, newPrefix } from "./helpers.js";

const { FileStore, OAuthToken, SDKException, TokenStore, UserSignature } = sdk;
const { SecretsManagerStore } = pkg;

function alice() {
  const token = new OAuthToken("1000.ALICE", "alice-secret", null, "1000.alice-refresh", "https://example.com/cb");
  token.setUserSignature(new UserSignature("alice@example.com"));
  token.setAccessToken("1000.alice-access-1");
  token.setExpiresIn("1900000000000");
  token.setAPIDomain("https://www.zohoapis.eu");
  return token;
}

function bob() {
  const token = new OAuthToken("1000.BOB", "bob-secret", null, "1000.bob-refresh");
  token.setAccessToken("1000.bob-access");
  return token;
}

/** The fields of `token` (or what a call answered), ids by name, absent as null. */
function snapshot(token, names) {
  if (token === null || token === undefined) return token ?? null;
  const value = (v) => v ?? null;
  return {
    id: names.get(token.getId()) ?? value(token.getId()),
    user: value(token.getUserSignature()?.getName()),
    clientId: value(token.getClientId()),
    clientSecret: value(token.getClientSecret()),
    refreshToken: value(token.getRefreshToken()),
    accessToken: value(token.getAccessToken()),
    grantToken: value(token.getGrantToken()),
    expiresIn: value(token.getExpiresIn()),
    redirectUrl: value(token.getRedirectURL()),
    apiDomain: value(token.getAPIDomain()),
  };
}

/** What `call()` did: its answer (tokens as snapshots) or the exception it raised. */
async function outcome(call, names) {
  let answer;
  try {
    answer = await call();
  } catch (error) {
    assert.ok(error instanceof SDKException, `not an SDKException: ${error}`);
    return ["SDKException", error.code];
  }
  if (Array.isArray(answer)) {
    const tokens = answer.map((t) => snapshot(t, names));
    return ["list", tokens.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))];
  }
  if (answer instanceof OAuthToken) return ["token", snapshot(answer, names)];
  return ["value", answer ?? null];
}

/** The same operations on `store`; answers every outcome, in order. */
async function scenario(store) {
  const names = new Map();
  const log = [];
  const record = async (label, call, query) => {
    const result = await outcome(call, names);
    log.push([label, result, query === undefined ? null : snapshot(query, names)]);
  };
  const saveAs = async (token, name) => {
    const answer = await store.saveToken(token);
    names.set(token.getId(), name);
    return answer;
  };

  const a = alice();
  await record("save alice", () => saveAs(a, "A"), a);
  const b = bob();
  await record("save bob", () => saveAs(b, "B"), b);

  let q = new OAuthToken();
  q.setUserSignature(new UserSignature("alice@example.com"));
  await record("find by user", () => store.findToken(q), q);
  q = new OAuthToken("1000.BOB", "bob-secret", null, "1000.bob-refresh");
  await record("find by refresh token", () => store.findToken(q), q);
  q = new OAuthToken();
  q.setAccessToken("1000.alice-access-1");
  await record("find by access token", () => store.findToken(q), q);
  q = new OAuthToken();
  q.setUserSignature(new UserSignature("nobody@example.com"));
  await record("find unknown user", () => store.findToken(q), q);
  q = new OAuthToken(null, null, null, null, null, "no-key-only-an-id");
  await record("find with nothing to match on", () => store.findToken(q), q);
  await record("find a non-token", () => store.findToken("not a token"));
  q = new OAuthToken();
  q.setUserSignature(new UserSignature("alice@example.com"));
  q.setAccessToken("query-access");
  await record("find keeps the query's own fields", () => store.findToken(q), q);

  await record("find by id", () => store.findTokenById(a.getId()));
  await record("find by unknown id", () => store.findTokenById("424242"));

  // The SDK's refresh: it saves the token it holds, id set.
  a.setAccessToken("1000.alice-access-2");
  a.setExpiresIn("1900000003600");
  await record("save refreshed alice", () => store.saveToken(a), a);
  // A save without id, matched by user name: fills the rest from the stored token.
  const u = new OAuthToken(null, null, null, null, null, null, "1000.alice-access-3", new UserSignature("alice@example.com"));
  await record("save by user name", () => store.saveToken(u), u);
  await record("find by id after saves", () => store.findTokenById(a.getId()));
  const n = new OAuthToken(null, null, null, null, null, "4242", null, new UserSignature("carol@example.com"));
  await record("save new token without credential", () => store.saveToken(n), n);
  await record("save a non-token", () => store.saveToken("not a token"));

  await record("get tokens", () => store.getTokens());
  await record("delete unknown id", () => store.deleteToken("424242"));
  await record("delete bob", () => store.deleteToken(b.getId()));
  await record("find deleted bob by id", () => store.findTokenById(b.getId()));
  await record("get tokens after delete", () => store.getTokens());
  await record("delete tokens", () => store.deleteTokens());
  await record("get tokens after deleteTokens", () => store.getTokens());
  return log;
}

test("the six methods answer as FileStore does", async (t) => {
  const store = makeStore(newPrefix(t), { managedRefresh: false });
  assert.ok(store instanceof TokenStore.TokenStore);
  const folder = mkdtempSync(join(tmpdir(), "filestore-"));
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  const expected = await scenario(new FileStore(join(folder, "tokens.csv")));
  const actual = await scenario(store);
  assert.deepEqual(
    actual.map(([label]) => label),
    expected.map(([label]) => label),
  );
  for (let i = 0; i < expected.length; i++) {
    const [label, want, wantQuery] = expected[i];
    const [, got, gotQuery] = actual[i];
    assert.deepEqual(got, want, label);
    assert.deepEqual(gotQuery, wantQuery, `${label}: the token passed in`);
  }
});

test("expiresIn is the SDK's string of epoch ms", async (t) => {
  const store = makeStore(newPrefix(t), { managedRefresh: false });
  const token = alice();
  await store.saveToken(token);
  assert.equal((await store.findTokenById(token.getId())).getExpiresIn(), "1900000000000");
  const [listed] = await store.getTokens();
  assert.equal(listed.getExpiresIn(), "1900000000000");
  const bad = bob();
  bad.setExpiresIn("soon");
  await assert.rejects(store.saveToken(bad), (error) => {
    assert.ok(error instanceof SDKException);
    assert.equal(error.code, "TOKEN_STORE");
    assert.match(error.message, /saveToken/);
    return true;
  });
});

test("the default prefix is zoho/crm, and bad options throw SDKException", () => {
  assert.equal(new SecretsManagerStore().prefix, "zoho/crm");
  for (const options of [{ prefix: "bad prefix with spaces" }, { cacheTtl: -1 }, { recoveryWindowDays: 3 }]) {
    assert.throws(
      () => new SecretsManagerStore(options),
      (error) => error instanceof SDKException && error.code === "TOKEN_STORE" && error.kind === "invalid_input",
      JSON.stringify(options),
    );
  }
});
