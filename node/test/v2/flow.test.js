// The v2 SDK's own flow through the store, with managedRefresh off: the SDK
// refreshes by itself (its multipart POST) and saves through the store, in
// the layout every store of the package shares (the user's email as the
// stored token's user name).

import assert from "node:assert/strict";
import { test } from "node:test";

import { newPrefix, rustPeer } from "../helpers.js";
import {
  CLIENT_SECRET,
  EMAIL,
  REFRESH_TOKEN,
  fakeZoho,
  getUsers,
  initialize,
  makeStore,
  scratchFolder,
  sdkToken,
  stored,
} from "./support.js";
import { sdk } from "./under_test.js";

test("initialize, then CRM calls that refresh and save through the store (the SDK refreshes)", async (t) => {
  const prefix = newPrefix(t);
  // expires_in of 1 s: the SDK refreshes whenever under 5 s remain, so each
  // call refreshes again and saves again.
  const zoho = await fakeZoho(t, 1);
  const store = makeStore(prefix, { managedRefresh: false });
  const token = await initialize(zoho, store, sdkToken(), scratchFolder(t));

  // The first call: nothing stored, so the SDK refreshed and saved.
  // (The SDK's answer, not its parse: typescript-sdk-2.1 reads no field of the fake's user.)
  assert.equal((await getUsers()).length, 1);
  assert.deepEqual(zoho.tokenRequests.map((request) => request.kind), ["multipart"]);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-1");
  await stored(prefix, EMAIL, "access-1");
  assert.ok(token.getId());
  assert.equal(token.getUserMail(), EMAIL);

  // The second: the token is about to expire, the SDK refreshes and saves again.
  await getUsers();
  assert.equal(zoho.tokenRequests.length, 2);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-2");
  await stored(prefix, EMAIL, "access-2");

  // One stored token, updated in place, as another instance sees it.
  const other = makeStore(prefix, { managedRefresh: false });
  const tokens = await other.getTokens();
  assert.deepEqual(tokens.map((each) => each.getId()), [token.getId()]);
  assert.ok(tokens[0] instanceof sdk.OAuthToken);
  assert.equal(tokens[0].getAccessToken(), "access-2");
  assert.equal(tokens[0].getUserMail(), EMAIL);
  assert.equal(tokens[0].getClientSecret(), CLIENT_SECRET);
  const found = await other.getToken(new sdk.UserSignature(EMAIL), sdkToken());
  assert.equal(found.getAccessToken(), "access-2");
  assert.equal(found.getId(), token.getId());
  assert.match(found.getExpiresIn(), /^\d+$/);

  // The Rust store (and so the Python and v8 SDK stores) finds it by the user's email.
  const fromRust = rustPeer("find-user", prefix, EMAIL);
  assert.equal(fromRust.id, token.getId());
  assert.equal(fromRust.access_token, "access-2");
  assert.equal(fromRust.refresh_token, REFRESH_TOKEN);
  assert.equal(String(fromRust.expiry_time), found.getExpiresIn());
});
