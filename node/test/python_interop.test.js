// The Node and Python packages on one prefix: each reads and updates the
// tokens the other saved, through the official SDKs' own OAuthToken objects
// (the Zoho Python SDK's on the Python side).
//
// The Python side is the package `pip install ./python` installs:
// tests/run-all builds it into .venv-py before it runs this suite; set
// ZTS_PYTHON to another Python that has it. Without it this test fails, and
// says how to get it: it never skips.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";

import { sdk } from "./under_test.js";

import { ENDPOINT, PACKAGE_DIR, REGION, makeStore, newPrefix } from "./helpers.js";

const PYTHON = process.env.ZTS_PYTHON ?? join(PACKAGE_DIR, "..", ".venv-py", "bin", "python");

// A Python peer: `save USER ACCESS` saves a token for USER through the Python
// package's SecretsManagerStore and prints its id; `find USER` prints the
// stored token's id, access token and expiry as the Python SDK sees them.
const PEER = `
import json, sys
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
from zoho_token_store import SecretsManagerStore

command, prefix, endpoint, region, user = sys.argv[1:6]
store = SecretsManagerStore(prefix, managed_refresh=False, endpoint_url=endpoint, region_name=region)
if command == "save":
    token = OAuthToken(client_id="1000.PY", client_secret="py-secret",
                       refresh_token="1000.py-refresh", user_signature=UserSignature(user))
    token.set_access_token(sys.argv[6])
    token.set_expires_in("1900000005678")
    store.save_token(token)
    print(json.dumps({"id": token.get_id()}))
else:
    found = store.find_token(OAuthToken(user_signature=UserSignature(user)))
    print(json.dumps(None if found is None else {
        "id": found.get_id(), "access_token": found.get_access_token(),
        "expires_in": found.get_expires_in(), "refresh_token": found.get_refresh_token()}))
`;

const { OAuthToken, UserSignature } = sdk;

let checked = false;
function python(...args) {
  if (!checked) {
    try {
      execFileSync(PYTHON, ["-c", "import zoho_token_store"], { stdio: "ignore" });
    } catch {
      assert.fail(
        `no Python with the zoho_token_store package at ${PYTHON}: run tests/run-all ` +
          "(it builds the Python package before this suite) or set ZTS_PYTHON",
      );
    }
    checked = true;
  }
  const output = execFileSync(PYTHON, ["-c", PEER, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, AWS_ENDPOINT_URL: ENDPOINT },
  });
  return JSON.parse(output);
}

function userQuery(user) {
  const query = new OAuthToken();
  query.setUserSignature(new UserSignature(user));
  return query;
}

test("Node and Python stores read and update each other's tokens", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix, { managedRefresh: false });

  // Saved from Node, found and updated from Python.
  const token = new OAuthToken("1000.JS", "js-secret", null, "1000.js-refresh");
  token.setUserSignature(new UserSignature("js@example.com"));
  token.setAccessToken("1000.js-access");
  token.setExpiresIn("1900000001234");
  await store.saveToken(token);
  assert.deepEqual(python("find", prefix, ENDPOINT, REGION, "js@example.com"), {
    id: token.getId(),
    access_token: "1000.js-access",
    expires_in: "1900000001234",
    refresh_token: "1000.js-refresh",
  });
  const updated = python("save", prefix, ENDPOINT, REGION, "js@example.com", "1000.from-python");
  assert.equal(updated.id, token.getId(), "Python's save by user name updates Node's token");
  assert.equal((await makeStore(prefix).findTokenById(token.getId())).getAccessToken(), "1000.from-python");

  // Saved from Python, found from Node.
  const saved = python("save", prefix, ENDPOINT, REGION, "py@example.com", "1000.py-access");
  const query = userQuery("py@example.com");
  assert.equal(await store.findToken(query), query);
  assert.equal(query.getId(), saved.id);
  assert.equal(query.getAccessToken(), "1000.py-access");
  assert.equal(query.getRefreshToken(), "1000.py-refresh");
  assert.equal(query.getExpiresIn(), "1900000005678");
  assert.equal(python("find", prefix, ENDPOINT, REGION, "nobody@example.com"), null);
});
