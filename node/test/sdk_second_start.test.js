// A cold start on another instance: the SDK's initialize finds the token the
// first one saved, and does not refresh.

import assert from "node:assert/strict";
import { test } from "node:test";

import { makeStore, newPrefix } from "./helpers.js";
import { fakeZoho, initialize, resourceFolder } from "./sdk_support.js";

test("a second Lambda starts from the stored token without refreshing", async (t) => {
  const prefix = newPrefix(t);
  const zoho = await fakeZoho(t, 3600);
  const resources = resourceFolder(t);
  const first = await initialize(zoho, makeStore(prefix, { managedRefresh: false }), resources);
  assert.equal(zoho.tokenRequests.length, 1);

  // A cold start elsewhere: a new store instance, the same configuration.
  const second = await initialize(zoho, makeStore(prefix, { managedRefresh: false }), resources);
  assert.equal(zoho.tokenRequests.length, 1, "the second start refreshed instead of using the stored token");
  assert.equal(second.getId(), first.getId());
  assert.equal(second.getAccessToken(), "access-1");
});
