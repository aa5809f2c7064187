// The SDK's own flow through the store: InitializeBuilder with a custom
// environment on a fake Zoho, a refresh, then a CRM call that refreshes the
// expiring token and saves it again, all through SecretsManagerStore. With
// managedRefresh off, the SDK refreshes by itself (its multipart POST).

import assert from "node:assert/strict";
import { test } from "node:test";

import { sdk } from "./under_test.js";

import { makeStore, newPrefix, rustPeer } from "./helpers.js";
import { CLIENT_SECRET, EMAIL, REFRESH_TOKEN, USER, fakeZoho, initialize, resourceFolder } from "./sdk_support.js";

const { OAuthToken, ParameterMap, UserSignature, Users } = sdk;

test("initialize, then a CRM call, refresh and save through the store (the SDK refreshes)", async (t) => {
  const prefix = newPrefix(t);
  // expires_in of 1 s: the SDK refreshes whenever under 5 s remain, so the
  // token from initialize is refreshed again by the next CRM call.
  const zoho = await fakeZoho(t, 1);
  const store = makeStore(prefix, { managedRefresh: false });
  const token = await initialize(zoho, store, resourceFolder(t));

  // initialize: no stored token, so the SDK refreshed (a multipart POST),
  // asked the CRM who the user is, and saved through the store.
  assert.equal(zoho.tokenRequests.length, 1);
  assert.equal(zoho.tokenRequests[0].kind, "multipart");
  assert.ok(token.getId());
  assert.equal(token.getAccessToken(), "access-1");
  assert.equal(token.getUserSignature().getName(), USER);
  const stored = await makeStore(prefix, { managedRefresh: false }).findTokenById(token.getId());
  assert.equal(stored.getAccessToken(), "access-1");
  assert.equal(stored.getRefreshToken(), REFRESH_TOKEN);
  assert.equal(stored.getUserSignature().getName(), USER);
  assert.equal(stored.getAPIDomain(), zoho.crmUrl);
  assert.match(stored.getExpiresIn(), /^\d+$/);

  // A CRM call: the token is about to expire, so the SDK refreshes and saves again.
  const param = new ParameterMap();
  await param.add(Users.GetUsersParam.TYPE, "CurrentUser");
  const response = await new Users.UsersOperations().getUsers(param);
  assert.equal(response.getStatusCode(), 200);
  const wrapper = response.getObject();
  assert.ok(wrapper instanceof Users.ResponseWrapper);
  assert.equal(wrapper.getUsers()[0].getEmail(), EMAIL);
  assert.equal(zoho.tokenRequests.length, 2);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-2");

  // One stored token, updated in place, as a fresh instance (another Lambda) sees it.
  const other = makeStore(prefix, { managedRefresh: false });
  const tokens = await other.getTokens();
  assert.deepEqual(
    tokens.map((each) => each.getId()),
    [token.getId()],
  );
  assert.equal(tokens[0].getAccessToken(), "access-2");
  const query = new OAuthToken();
  query.setUserSignature(new UserSignature(USER));
  const found = await other.findToken(query);
  assert.equal(found.getAccessToken(), "access-2");
  assert.equal(found.getClientSecret(), CLIENT_SECRET);

  // And the Rust store on the same prefix finds what the SDK saved.
  const fromRust = rustPeer("find-user", prefix, USER);
  assert.equal(fromRust.id, token.getId());
  assert.equal(fromRust.access_token, "access-2");
  assert.equal(String(fromRust.expiry_time), found.getExpiresIn());
});
