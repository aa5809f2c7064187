// The v2 SDK's first start on a grant token with managed refresh: nothing is
// stored for the user, so the store exchanges the grant (once for the fleet)
// and saves the token under the user's email; the SDK exchanges nothing.
// (A file of its own: the SDK keeps its Initializer in module state.)

import assert from "node:assert/strict";
import { test } from "node:test";

import { newPrefix } from "../helpers.js";
import { EMAIL, fakeZoho, getUsers, initialize, makeStore, scratchFolder, sdkToken } from "./support.js";
import { sdk } from "./under_test.js";

test("a grant token with nothing stored is exchanged by the store", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t, 3600);
  zoho.grantToken = "1000.v2-grant";
  const token = new sdk.OAuthToken(sdkToken().getClientId(), sdkToken().getClientSecret(), "1000.v2-grant", null);
  await initialize(zoho, makeStore(prefix), token, scratchFolder(t));
  await getUsers();
  assert.deepEqual(zoho.tokenRequests.map((request) => [request.kind, request.grant_type]), [["form", "authorization_code"]]);
  assert.equal(zoho.crmRequests.at(-1), "Zoho-oauthtoken access-1");
  const [stored] = await makeStore(prefix, { managedRefresh: false }).getTokens();
  assert.equal(stored.getUserMail(), EMAIL);
  assert.equal(stored.getAccessToken(), "access-1");
  assert.ok(stored.getRefreshToken());
});
