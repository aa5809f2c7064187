// Two store instances on one prefix (two Lambdas), and the Node and Rust
// stores reading each other's tokens.

import assert from "node:assert/strict";
import { test } from "node:test";

import { sdk } from "./under_test.js";

import { makeStore, newPrefix, rustPeer } from "./helpers.js";

const { OAuthToken, UserSignature } = sdk;

function tokenFor(user, access = "1000.access-1", expiresIn = "1900000000000") {
  const token = new OAuthToken("1000.CLIENT", "client-secret", null, `1000.refresh-${user}`);
  token.setUserSignature(new UserSignature(user));
  token.setAccessToken(access);
  token.setExpiresIn(expiresIn);
  return token;
}

function userQuery(user) {
  const query = new OAuthToken();
  query.setUserSignature(new UserSignature(user));
  return query;
}

test("two instances share tokens", async (t) => {
  const prefix = newPrefix(t);
  const [first, second] = [makeStore(prefix), makeStore(prefix)];
  const token = tokenFor("shared@example.com");
  await first.saveToken(token);

  const found = await second.findToken(userQuery("shared@example.com"));
  assert.equal(found.getId(), token.getId());
  assert.equal(found.getAccessToken(), "1000.access-1");
  const byRefresh = await second.findToken(
    new OAuthToken("1000.CLIENT", "client-secret", null, "1000.refresh-shared@example.com"),
  );
  assert.equal(byRefresh.getId(), token.getId());

  // The second instance saves a refreshed token; a third (a cold start) and
  // the first agree on one token.
  const refreshed = tokenFor("shared@example.com", "1000.access-2", "1900000003600");
  await second.saveToken(refreshed);
  assert.equal(refreshed.getId(), token.getId(), "a save by user name updates the stored token");
  const third = makeStore(prefix);
  assert.equal((await third.findTokenById(token.getId())).getAccessToken(), "1000.access-2");
  assert.deepEqual(
    (await first.getTokens()).map((each) => each.getId()),
    [token.getId()],
  );

  // A token added by one instance is listed by the other.
  const other = tokenFor("other@example.com");
  await first.saveToken(other);
  assert.deepEqual(
    (await second.getTokens()).map((each) => each.getId()).sort(),
    [token.getId(), other.getId()].sort(),
  );
});

test("a token saved from Node is found by the Rust store", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix);
  const token = tokenFor("js@example.com");
  token.setAPIDomain("https://www.zohoapis.com");
  await store.saveToken(token);

  const byId = rustPeer("find-by-id", prefix, token.getId());
  assert.deepEqual(byId, {
    id: token.getId(),
    user_name: "js@example.com",
    client_id: "1000.CLIENT",
    client_secret: "client-secret",
    refresh_token: "1000.refresh-js@example.com",
    access_token: "1000.access-1",
    expiry_time: 1900000000000,
    api_domain: "https://www.zohoapis.com",
  });
  assert.deepEqual(rustPeer("find-user", prefix, "js@example.com"), byId);
  assert.equal(rustPeer("find-user", prefix, "nobody@example.com"), null);
});

test("a token saved from Rust is found by the Node store", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix);
  const saved = rustPeer("save", prefix, {
    stdin: JSON.stringify({
      user_name: "rs@example.com",
      client_id: "1000.RS",
      client_secret: "rs-secret",
      refresh_token: "1000.rs-refresh",
      access_token: "1000.rs-access",
      expiry_time: 1900000001234,
    }),
  });
  const byId = await store.findTokenById(saved.id);
  assert.equal(byId.getUserSignature().getName(), "rs@example.com");
  assert.equal(byId.getRefreshToken(), "1000.rs-refresh");
  assert.equal(byId.getExpiresIn(), "1900000001234");
  const query = userQuery("rs@example.com");
  assert.equal(await store.findToken(query), query);
  assert.equal(query.getId(), saved.id);
  assert.equal(query.getAccessToken(), "1000.rs-access");

  // Node updates it; Rust sees the update.
  query.setAccessToken("1000.rs-access-from-node");
  await store.saveToken(query);
  assert.equal(rustPeer("find-by-id", prefix, saved.id).access_token, "1000.rs-access-from-node");
});

test("an expired token is never served from another instance's cache", async (t) => {
  const prefix = newPrefix(t);
  const writer = makeStore(prefix, { managedRefresh: false });
  const reader = makeStore(prefix, { managedRefresh: false, cacheTtl: 3600 });
  const expired = tokenFor("expiring@example.com", "1000.old", String(Date.now() - 1000));
  await writer.saveToken(expired);
  assert.equal((await reader.findTokenById(expired.getId())).getAccessToken(), "1000.old");

  // Another Lambda refreshes it; the reader's cached copy has expired, so it reads again.
  await writer.saveToken(tokenFor("expiring@example.com", "1000.new", "1900000000000"));
  assert.equal((await reader.findTokenById(expired.getId())).getAccessToken(), "1000.new");
  assert.equal((await reader.findToken(userQuery("expiring@example.com"))).getAccessToken(), "1000.new");
});
