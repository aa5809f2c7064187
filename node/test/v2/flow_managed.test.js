// The v2 SDK's own flow through the store with managed refresh (the
// default): the store refreshes (the crate's form-encoded POST, once for the
// fleet), the SDK never does (its multipart POST), also when its token in
// memory nears expiry, since the store has it ask the store again then.

import assert from "node:assert/strict";
import { test } from "node:test";

import { newPrefix } from "../helpers.js";
import { EMAIL, fakeZoho, getUsers, initialize, makeStore, scratchFolder, sdkToken } from "./support.js";
import { sdk } from "./under_test.js";

/** Saves through `store` `email`'s token with `access`, expiring at `expiry` (epoch ms). */
async function saveStored(store, access, expiry, email = EMAIL) {
  const token = sdkToken();
  token.setAccessToken(access);
  token.setExpiresIn(String(expiry));
  await store.saveToken(new sdk.UserSignature(email), token);
  return token;
}

test("the store refreshes an expired token once, and again when the SDK's copy nears expiry", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t, 3600);
  const saved = await saveStored(makeStore(prefix, { managedRefresh: false }), "1000.expired-access", Date.now() - 60_000);
  const store = makeStore(prefix);
  const token = await initialize(zoho, store, sdkToken(), scratchFolder(t));

  // The first call: the SDK asks the store (getToken), which refreshes.
  await getUsers();
  assert.deepEqual(zoho.tokenRequests.map((request) => request.kind), ["form"]);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-1");
  assert.equal(token.getId(), saved.getId());
  assert.equal(token.getAccessToken(), "access-1");

  // Later calls: the SDK's copy is valid, nobody is asked.
  await getUsers();
  assert.equal(zoho.tokenRequests.length, 1);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-1");

  // A minute from expiry (within refreshAhead, 300 s), in memory and as
  // stored (saved through the SDK's store, so that its cache has it too;
  // time passing does the same): the SDK would go on with its copy until 5 s
  // are left, then refresh by itself; instead it asks the store
  // (getTokenById), which refreshes once for the fleet.
  const soon = Date.now() + 60_000;
  await saveStored(store, "1000.aging-access", soon);
  token.setAccessToken("1000.aging-access");
  token.setExpiresIn(String(soon));
  await getUsers();
  assert.deepEqual(zoho.tokenRequests.map((request) => request.kind), ["form", "form"]);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-2");
  assert.equal(token.getAccessToken(), "access-2");
  assert.ok(Number(token.getExpiresIn()) > Date.now() + 3_000_000);
  const stored = await makeStore(prefix, { managedRefresh: false }).getTokenById(saved.getId(), sdkToken());
  assert.equal(stored.getAccessToken(), "access-2");
});
