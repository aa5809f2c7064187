// No secret value in what the store shows: String(store), util.inspect,
// JSON.stringify, error messages and stacks. And a closed endpoint is a
// rejection within the timeouts, never a hang.

import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";

import { CreateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { sdk, pkg } from "./under_test.js";

import { makeStore, newPrefix, secretsManager } from "./helpers.js";

const { OAuthToken, SDKException, UserSignature } = sdk;
const { SecretsManagerStore } = pkg;

const SECRETS = ["SECRET-client-7f3a", "SECRET-refresh-7f3a", "SECRET-access-7f3a", "SECRET-grant-7f3a"];

function secretToken(user, id = null) {
  const token = new OAuthToken("1000.C", SECRETS[0], SECRETS[3], SECRETS[1], null, id);
  token.setAccessToken(SECRETS[2]);
  token.setExpiresIn("1900000000000"); // valid: a managed find serves it without a refresh
  if (user) token.setUserSignature(new UserSignature(user));
  return token;
}

/** Everything a log would show of `value`. */
function shown(value) {
  return [String(value), inspect(value, { depth: 10, showHidden: true }), JSON.stringify(value), value?.stack ?? ""].join(
    "\n",
  );
}

function assertNoSecret(text) {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `a secret value was shown: ${text}`);
}

/** The SDKException `promise` rejects with (code TOKEN_STORE). */
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SDKException, `not an SDKException: ${error}`);
    assert.equal(error.code, "TOKEN_STORE");
    return error;
  }
  assert.fail("no rejection");
}

test("the store shows its prefix only", async (t) => {
  const prefix = newPrefix(t);
  const store = makeStore(prefix);
  await store.saveToken(secretToken("r@example.com"));
  await store.findToken(secretToken("r@example.com"));
  const expected = `SecretsManagerStore(prefix=${JSON.stringify(prefix)}, managedRefresh=true)`;
  assert.equal(String(store), expected);
  assert.equal(`${store}`, expected);
  assert.equal(inspect(store), expected);
  assert.equal(JSON.stringify(store), JSON.stringify({ prefix, managedRefresh: true }));
  assertNoSecret(shown(store));
  assertNoSecret(inspect(store, { showHidden: true, depth: Infinity, customInspect: false }));
});

test("invalid input errors show no secret", async (t) => {
  const store = makeStore(newPrefix(t));
  const error = await rejection(store.saveToken(secretToken("e@example.com", "../escape")));
  assert.match(error.message, /saveToken/);
  assert.match(error.message, /escape/); // the id is named: it is not a secret
  assert.equal(error.kind, "invalid_input");
  assertNoSecret(shown(error));
  assertNoSecret(shown(await rejection(store.saveToken(secretToken(`${"u".repeat(400)}@example.com`)))));
  const huge = secretToken("h@example.com");
  huge.setRedirectURL("x".repeat(70000));
  assertNoSecret(shown(await rejection(store.saveToken(huge))));
});

test("a corrupt stored token is named, not shown", async (t) => {
  const prefix = newPrefix(t);
  await secretsManager.send(
    new CreateSecretCommand({
      Name: `${prefix}/tokens/broken`,
      SecretString: `{"refresh_token": 42, "x": "${SECRETS[1]}"`,
    }),
  );
  const error = await rejection(makeStore(prefix).findTokenById("broken"));
  assert.match(error.message, /broken/);
  assert.equal(error.kind, "corrupt");
  assertNoSecret(shown(error));
});

// The runner's timeout turns a hang into a failure; the store's own limits
// (1 s an attempt, 2 s a call) answer well before it.
test("a closed endpoint is a rejection within the timeouts, never a hang", { timeout: 60_000 }, async () => {
  // Port 9 (discard) on loopback: nothing listens, every connection is refused.
  const dead = new SecretsManagerStore({
    prefix: "nowhere",
    endpointUrl: "http://127.0.0.1:9",
    region: "us-east-1",
    attemptTimeout: 1,
    operationTimeout: 2,
  });
  const error = await rejection(dead.saveToken(secretToken("b@example.com")));
  assert.match(error.message, /saveToken/);
  assert.equal(error.kind, "backend");
  assertNoSecret(shown(error));
  assertNoSecret(shown(await rejection(dead.getTokens())));
  assertNoSecret(shown(await rejection(dead.findToken(secretToken("b@example.com")))));
});
