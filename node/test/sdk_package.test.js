// The package as an application on one Zoho SDK sees it (in the SDK matrix,
// tests/node-sdks, on each supported SDK): require() and import give one
// class, made for that SDK: its TokenStore extended where it is a class,
// its OAuthToken answered, its SDKException raised.

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { FakeZoho } from "./fake_zoho.js";
import { makeStore, newPrefix } from "./helpers.js";
import { APP, SDK_NAME, pkg, requirePackage, sdk } from "./under_test.js";

const { OAuthToken, SDKException, UserSignature } = sdk;

test("require() and import give the same class, made for the SDK installed", () => {
  const required = requirePackage();
  assert.equal(required.SecretsManagerStore, pkg.SecretsManagerStore);
  assert.equal(required.default, pkg.default);
  assert.ok(pkg.SUPPORTED_SDKS.includes(SDK_NAME));
  const store = new required.SecretsManagerStore({ prefix: "sdk/package" });
  assert.equal(store.sdk, SDK_NAME);
  assert.ok(store instanceof pkg.SecretsManagerStore);
  const TokenStore = sdk.TokenStore?.TokenStore;
  if (typeof TokenStore === "function") {
    assert.ok(store instanceof TokenStore, `${SDK_NAME}'s InitializeBuilder checks instanceof TokenStore`);
  }
});

test("installing the package added no Zoho SDK to the application", { skip: !APP && "the checkout's own tests use its development SDK" }, () => {
  const zoho = readdirSync(join(APP, "node_modules", "@zohocrm"));
  assert.deepEqual(zoho, [SDK_NAME.slice("@zohocrm/".length)]);
});

test("tokens come back as the SDK's OAuthToken, errors as its SDKException", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix, { managedRefresh: false });
  const token = new OAuthToken("1000.PKG", "package-client-secret", null, "1000.package-refresh");
  token.setUserSignature(new UserSignature("package@example.com"));
  token.setAccessToken("1000.package-access");
  token.setExpiresIn(String(Date.now() + 3_600_000));
  await store.saveToken(token);

  const found = await store.findTokenById(token.getId());
  assert.ok(found instanceof OAuthToken);
  assert.equal(found.getRefreshToken(), "1000.package-refresh");
  // Twice: the second answer is the warm one, off the native cache.
  const warm = await store.findTokenById(token.getId());
  assert.ok(warm instanceof OAuthToken);
  assert.equal(warm.getAccessToken(), "1000.package-access");
  assert.notEqual(warm, found, "each answer is a new OAuthToken, as FileStore's");
  const [listed] = await store.getTokens();
  assert.ok(listed instanceof OAuthToken);

  await assert.rejects(store.findTokenById("no-such-token"), (error) => {
    assert.ok(error instanceof SDKException, "not the SDK's SDKException");
    assert.equal(error.code, "TOKEN_STORE");
    return true;
  });
  await assert.rejects(store.deleteToken("no-such-token"), SDKException);
  assert.throws(() => new pkg.SecretsManagerStore({ sdk: "@zohocrm/nodejs-sdk-1.0" }), /unsupported Zoho SDK/);
});

test("a warm answer is dropped when this process saves or deletes the token", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix, { managedRefresh: false });
  const token = new OAuthToken("1000.PKG", "package-client-secret", null, "1000.warm-refresh");
  token.setUserSignature(new UserSignature("warm@example.com"));
  token.setAccessToken("1000.warm-access-1");
  token.setExpiresIn(String(Date.now() + 3_600_000));
  await store.saveToken(token);
  assert.equal((await store.findTokenById(token.getId())).getAccessToken(), "1000.warm-access-1");

  token.setAccessToken("1000.warm-access-2");
  await store.saveToken(token);
  assert.equal((await store.findTokenById(token.getId())).getAccessToken(), "1000.warm-access-2");

  await store.deleteToken(token.getId());
  await assert.rejects(store.findTokenById(token.getId()), SDKException);
});

test("a warm answer is never served within refreshAhead of expiry, and ends with the cache TTL", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await FakeZoho.forTest(t, {
    clientId: "1000.PKG",
    clientSecret: "package-client-secret",
    refreshToken: "1000.warm-refresh",
    userEmail: "warm@example.com",
  });
  const store = makeStore(prefix, { accountsUrl: zoho.accountsUrl, cacheTtl: 1 });
  const token = new OAuthToken("1000.PKG", "package-client-secret", null, "1000.warm-refresh");
  token.setUserSignature(new UserSignature("warm@example.com"));
  token.setAccessToken("1000.aging-access");
  token.setExpiresIn(String(Date.now() + 60_000)); // within refreshAhead (300 s)
  token.setAPIDomain(zoho.crmUrl); // not Zoho's: the accountsUrl option is used
  await store.saveToken(token); // in this store's cache now

  // Cached, but within refreshAhead: refreshed (once), never served as it is.
  assert.equal((await store.findTokenById(token.getId())).getAccessToken(), "access-1");
  assert.equal((await store.findTokenById(token.getId())).getAccessToken(), "access-1");
  assert.equal(zoho.tokenRequests.length, 1);

  // Another process's write is seen once this store's cache TTL (1 s) is over.
  const other = new OAuthToken("1000.PKG", "package-client-secret", null, "1000.warm-refresh");
  other.setId(token.getId());
  other.setAccessToken("1000.from-another-process");
  other.setExpiresIn(String(Date.now() + 3_600_000));
  await makeStore(prefix, { managedRefresh: false }).saveToken(other);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal((await store.findTokenById(token.getId())).getAccessToken(), "1000.from-another-process");
  assert.equal(zoho.tokenRequests.length, 1);
});
