// What the v2 tests share: the fake Zoho's client, a store on LocalStack, and
// the SDK's initialize (InitializeBuilder, as its README has it). The SDK
// keeps its Initializer in module state, so each test that initializes it
// lives in a file of its own (a process of its own under node --test).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate } from "node:timers/promises";

import { ENDPOINT, REGION } from "../helpers.js";
import { FakeZoho } from "../fake_zoho.js";
import { pkg, sdk } from "./under_test.js";

const { Environment, InitializeBuilder, Initializer, Levels, LogBuilder, OAuthToken, UserSignature } = sdk;

export const CLIENT_ID = "1000.V2CLIENT";
export const CLIENT_SECRET = "v2-client-secret-value";
export const REFRESH_TOKEN = "1000.v2-refresh-token-value";
export const EMAIL = "v2.user@example.com";

/** A fake Zoho for the test `t`, stopped after it. */
export function fakeZoho(t, expiresInSec = 3600) {
  const options = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, userEmail: EMAIL };
  return FakeZoho.forTest(t, { ...options, expiresInSec });
}

/** A v2 store on LocalStack under `prefix`. */
export function makeStore(prefix, options = {}) {
  return new pkg.SecretsManagerStore({ prefix, endpointUrl: ENDPOINT, region: REGION, ...options });
}

/** The SDK's OAuthToken of the fake Zoho's client with its refresh token. */
export function sdkToken(refreshToken = REFRESH_TOKEN) {
  return new OAuthToken(CLIENT_ID, CLIENT_SECRET, null, refreshToken);
}

/** A folder of the test `t`'s own (the SDK writes field files and its log there). */
export function scratchFolder(t) {
  const folder = mkdtempSync(join(tmpdir(), "zoho-v2-"));
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

/**
 * The SDK initialized for `email` with `token` and `store`, through
 * InitializeBuilder (whose initialize() does not wait for the Initializer,
 * so this waits until the SDK has one).
 */
export async function initialize(zoho, store, token, folder, email = EMAIL) {
  const logger = new LogBuilder().level(Levels.OFF).filePath(join(folder, "sdk.log")).build();
  (await new InitializeBuilder())
    .user(new UserSignature(email))
    .environment(new Environment(zoho.crmUrl, zoho.accountsUrl, zoho.crmUrl, "fake"))
    .token(token)
    .store(store)
    .logger(logger)
    .resourcePath(folder)
    .initialize();
  for (let i = 0; i < 1000 && !(await Initializer.getInitializer()); i++) await setImmediate();
  if (!(await Initializer.getInitializer())) throw new Error("the SDK did not initialize");
  return token;
}

/**
 * Resolves once `email`'s stored token has the access token `access`:
 * typescript-sdk-2.1 does not wait for the saves of its refreshes (its
 * refreshAccessToken calls saveToken without await).
 */
export async function stored(prefix, email, access) {
  const store = makeStore(prefix, { managedRefresh: false });
  for (let i = 0; i < 200; i++) {
    const found = await store.getToken(new UserSignature(email), sdkToken());
    if (found?.getAccessToken() === access) return found;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${email}'s stored token never got the access token ${access}`);
}

/** The users of the fake CRM, through the SDK (a request the SDK authenticates). */
export async function getUsers() {
  const response = await new sdk.Users.UsersOperations().getUsers();
  if (response.getStatusCode() !== 200) throw new Error(`getUsers answered ${response.getStatusCode()}`);
  return response.getObject().getUsers();
}
