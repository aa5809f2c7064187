// The SDK's own flow under managed refresh (the default): the first token
// comes from the SDK's own refresh (nothing is stored yet), and the refresh
// of the next CRM call is the store's, so the SDK never posts again.

import assert from "node:assert/strict";
import { test } from "node:test";

import { sdk } from "./under_test.js";

import { makeStore, newPrefix } from "./helpers.js";
import { REFRESH_TOKEN, USER, fakeZoho, initialize, resourceFolder } from "./sdk_support.js";

const { ParameterMap, Users } = sdk;

test("initialize, then a CRM call whose refresh the store makes", async (t) => {
  const prefix = newPrefix(t);
  // The first token expires in 1 s: under refreshAhead (300 s) at once, and
  // under the SDK's own 5 s; the next lasts an hour (the store refuses to
  // serve a new token that expires within 5 s).
  const zoho = await fakeZoho(t, (n) => (n === 1 ? 1 : 3600));
  const token = await initialize(zoho, makeStore(prefix), resourceFolder(t));
  assert.deepEqual(
    zoho.tokenRequests.map((request) => request.kind),
    ["multipart"],
    "initialize: the SDK's own refresh (the store had no token to refresh)",
  );
  assert.equal(token.getUserSignature().getName(), USER);

  const param = new ParameterMap();
  await param.add(Users.GetUsersParam.TYPE, "CurrentUser");
  const response = await new Users.UsersOperations().getUsers(param);
  assert.equal(response.getStatusCode(), 200);
  // The store refreshed (form-encoded, from Rust) before the SDK saw the token.
  assert.deepEqual(
    zoho.tokenRequests.map((request) => request.kind),
    ["multipart", "form"],
  );
  assert.equal(zoho.tokenRequests[1].refresh_token, REFRESH_TOKEN);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-2");
  const stored = await makeStore(prefix, { managedRefresh: false }).findTokenById(token.getId());
  assert.equal(stored.getAccessToken(), "access-2");
});
