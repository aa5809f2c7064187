// The v2 store's six methods against the SDK's own FileStore, on the same
// operations; the package as a v2 application gets it (require() and
// import, the SDK's TokenStore, OAuthToken and SDKException); and no secret
// value in what it shows.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { test } from "node:test";

import { newPrefix } from "../helpers.js";
import { CLIENT_SECRET, EMAIL, REFRESH_TOKEN, fakeZoho, makeStore, sdkToken } from "./support.js";
import { SDK_NAME, pkg, requirePackage, sdk } from "./under_test.js";

const { FileStore, OAuthToken, SDKException, TokenStore, UserSignature } = sdk;
const user = (email = EMAIL) => new UserSignature(email);

/** The SDK's FileStore on a file of the test `t`'s own. */
function fileStore(t) {
  const folder = mkdtempSync(join(tmpdir(), "zoho-v2-filestore-"));
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  return new FileStore(join(folder, "tokens.csv"));
}

/** An hour from the start of the tests, in epoch ms. */
const EXPIRY = String(Date.now() + 3_600_000);

/** A token as a user's application saves it: client, refresh token, an access token and its expiry. */
function savedToken(access = "1000.access-one", refreshToken = REFRESH_TOKEN) {
  const token = sdkToken(refreshToken);
  token.setAccessToken(access);
  token.setExpiresIn(EXPIRY);
  return token;
}

/** What the tests compare of a token: every field but the id (FileStore keeps the SDK's, none here). */
function fields(token) {
  if (token === null || token === undefined) return token ?? null;
  return {
    clientId: token.getClientId() ?? null,
    clientSecret: token.getClientSecret() ?? null,
    refreshToken: token.getRefreshToken() ?? null,
    accessToken: token.getAccessToken() ?? null,
    expiresIn: token.getExpiresIn() ?? null,
    userMail: token.getUserMail() ?? null,
  };
}

/** Runs `operation(store)` on the store and on FileStore: both answers, or the errors' classes. */
async function both(t, prefix, operation) {
  const answer = async (store) => {
    try {
      return { value: await operation(store) };
    } catch (error) {
      return { error };
    }
  };
  return { ours: await answer(makeStore(prefix, { managedRefresh: false })), theirs: await answer(t.fileStore) };
}

test("the six methods answer as the SDK's FileStore does", async (t) => {
  const prefix = newPrefix(t);
  t.fileStore = fileStore(t);
  const saved = savedToken();
  for (const store of [makeStore(prefix, { managedRefresh: false }), t.fileStore]) {
    await store.saveToken(user(), savedToken());
    await store.saveToken(user("other@example.com"), savedToken("1000.access-other", "1000.other-refresh"));
  }

  // getToken: the user's token with this client and refresh token fills the query.
  let { ours, theirs } = await both(t, prefix, (store) => store.getToken(user(), sdkToken()));
  assert.deepEqual(fields(ours.value), fields(theirs.value));
  assert.equal(ours.value.getAccessToken(), saved.getAccessToken());
  assert.ok(ours.value instanceof OAuthToken && ours.value.getId());

  // Another client, another refresh token, another user, a value that is no token: none.
  const otherClient = new OAuthToken("1000.OTHER", CLIENT_SECRET, null, REFRESH_TOKEN);
  for (const [query, who] of [
    [otherClient, user()],
    [sdkToken("1000.not-stored"), user()],
    [sdkToken(), user("nobody@example.com")],
    [{ not: "a token" }, user()],
  ]) {
    ({ ours, theirs } = await both(t, prefix, (store) => store.getToken(who, query)));
    assert.equal(ours.value, theirs.value); // null, or undefined with the TypeScript SDKs
    assert.ok(ours.value == null);
  }

  // A user without an email (the SDK's constructor refuses one, so made without it): an SDKException from both.
  const nobody = Object.create(UserSignature.prototype);
  ({ ours, theirs } = await both(t, prefix, (store) => store.getToken(nobody, sdkToken())));
  assert.ok(theirs.error instanceof SDKException);
  assert.ok(ours.error instanceof SDKException);
  assert.equal(ours.error.code, pkg.TOKEN_STORE);

  // getTokens: every token, as new OAuthTokens.
  ({ ours, theirs } = await both(t, prefix, (store) => store.getTokens()));
  const sorted = (tokens) => tokens.map(fields).sort((a, b) => a.userMail.localeCompare(b.userMail));
  assert.deepEqual(sorted(ours.value), sorted(theirs.value));
  assert.ok(ours.value.every((token) => token instanceof OAuthToken));

  // getTokenById: every field from the stored token; an unknown id is an SDKException.
  const id = (await makeStore(prefix).getToken(user(), sdkToken())).getId();
  const byId = await makeStore(prefix, { managedRefresh: false }).getTokenById(id, new OAuthToken(null, null, null, null));
  assert.deepEqual(fields(byId), fields(ours.value.find((token) => token.getUserMail() === EMAIL)));
  assert.equal(byId.getId(), id);
  ({ ours, theirs } = await both(t, prefix, (store) => store.getTokenById("no-such-id", sdkToken())));
  assert.ok(theirs.error instanceof SDKException);
  assert.ok(ours.error instanceof SDKException);
  assert.equal(ours.error.code, pkg.TOKEN_STORE);

  // saveToken again for the user: the user's token is replaced, not doubled.
  ({ ours, theirs } = await both(t, prefix, async (store) => {
    const again = savedToken("1000.access-two");
    again.setUserMail(EMAIL);
    await store.saveToken(user(), again);
    return store.getTokens();
  }));
  assert.deepEqual(sorted(ours.value), sorted(theirs.value));
  assert.equal(ours.value.length, 2);

  // deleteToken: the token of its user mail with its client and refresh token; another stays.
  ({ ours, theirs } = await both(t, prefix, async (store) => {
    const query = sdkToken("1000.not-stored");
    query.setUserMail(EMAIL);
    await store.deleteToken(query); // not that user's refresh token: nothing
    const mine = sdkToken();
    mine.setUserMail(EMAIL);
    await store.deleteToken(mine);
    return store.getTokens();
  }));
  assert.deepEqual(sorted(ours.value), sorted(theirs.value));
  assert.deepEqual(ours.value.map((token) => token.getUserMail()), ["other@example.com"]);

  // deleteTokens: none left.
  ({ ours, theirs } = await both(t, prefix, async (store) => {
    await store.deleteTokens();
    return store.getTokens();
  }));
  assert.deepEqual(ours.value, []);
  assert.deepEqual(theirs.value, []);
});

test("require() and import give one class, made for this SDK, that the SDK takes", async () => {
  const required = requirePackage();
  assert.equal(required.SecretsManagerStore, pkg.SecretsManagerStore);
  assert.equal(required.default, pkg.SecretsManagerStore);
  assert.deepEqual([...pkg.SUPPORTED_SDKS].sort(), ["@zohocrm/nodejs-sdk-2.0", "@zohocrm/typescript-sdk-2.0", "@zohocrm/typescript-sdk-2.1"]);
  const store = makeStore("zoho/crm");
  assert.equal(store.sdk, SDK_NAME);
  assert.ok(store instanceof pkg.SecretsManagerStore);
  // nodejs-sdk-2.0's InitializeBuilder takes only an instance of its TokenStore class.
  if (typeof TokenStore === "function") assert.ok(store instanceof TokenStore);
  await assert.rejects(store.getTokenById("", sdkToken()), (error) => error instanceof SDKException);
  assert.throws(() => makeStore("zoho/crm", { sdk: "@zohocrm/nodejs-sdk-8.0" }), /unsupported Zoho SDK/);
  assert.throws(() => makeStore("zoho/crm", { noSuchOption: 1 }), (error) => error instanceof SDKException);
});

test("no secret value in what the store, its errors and the SDK's token show", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t, 3600);
  const secrets = [CLIENT_SECRET, REFRESH_TOKEN, "1000.revoked-refresh", "1000.access-one"];
  const store = makeStore(prefix, { accountsUrl: zoho.accountsUrl });
  for (const shown of [String(store), inspect(store, { depth: 10, showHidden: true }), JSON.stringify(store)]) {
    assert.match(shown, /SecretsManagerStore|prefix/);
    for (const secret of secrets) assert.ok(!shown.includes(secret), shown);
  }
  // A refresh Zoho rejects (the fake knows no such refresh token): a RefreshError naming no secret.
  const revoked = savedToken("1000.access-one", "1000.revoked-refresh");
  revoked.setExpiresIn(String(Date.now() - 60_000));
  await makeStore(prefix, { managedRefresh: false }).saveToken(user(), revoked);
  await assert.rejects(store.getToken(user(), sdkToken("1000.revoked-refresh")), (error) => {
    assert.ok(error instanceof SDKException);
    assert.equal(error.code, "TOKEN_REFRESH_REJECTED");
    for (const secret of secrets) assert.ok(!error.message.includes(secret) && !error.stack.includes(secret));
    return true;
  });
  // A token the store filled under managed refresh (whose authenticate() it
  // wraps) shows no more than one FileStore filled.
  await makeStore(prefix, { managedRefresh: false }).saveToken(user("valid@example.com"), savedToken());
  const token = await store.getToken(user("valid@example.com"), sdkToken());
  assert.equal(token.getAccessToken(), "1000.access-one");
  t.fileStore = fileStore(t);
  await t.fileStore.saveToken(user("valid@example.com"), savedToken());
  const theirs = await t.fileStore.getToken(user("valid@example.com"), sdkToken());
  assert.deepEqual(Object.keys(token).sort(), Object.keys(theirs).sort());
  assert.ok(!inspect(token, { showHidden: false }).includes("authenticate"));
});
