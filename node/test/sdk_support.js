// What the SDK-flow tests share: the fake Zoho's client, a resource folder,
// and the SDK's initialize. The SDK keeps its Initializer in module state, so
// each test that initializes it lives in a file of its own (a process of its
// own under node --test).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { sdk } from "./under_test.js";

import { FakeZoho } from "./fake_zoho.js";

const { Environment, InitializeBuilder, OAuthBuilder } = sdk;

export const CLIENT_ID = "1000.FAKECLIENT";
export const CLIENT_SECRET = "fake-client-secret-value";
export const REFRESH_TOKEN = "1000.fake-refresh-token-value";
export const EMAIL = "flow.user@example.com";
// The SDK names the user "{email}:{org zgid}" (see fake_zoho.js).
export const USER = `${EMAIL}:70001`;

/** A fake Zoho for the test `t`, stopped after it. */
export function fakeZoho(t, expiresInSec) {
  const options = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, userEmail: EMAIL };
  return FakeZoho.forTest(t, { ...options, expiresInSec });
}

/** A resource folder of the test `t`'s own (the SDK writes field files there). */
export function resourceFolder(t) {
  const folder = mkdtempSync(join(tmpdir(), "zoho-sdk-"));
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

/** The SDK's initialize with `store`, a refresh token only. */
export async function initialize(zoho, store, resourcePath) {
  const token = new OAuthBuilder()
    .clientId(CLIENT_ID)
    .clientSecret(CLIENT_SECRET)
    .refreshToken(REFRESH_TOKEN)
    .build();
  const environment = new Environment(zoho.crmUrl, zoho.accountsUrl, zoho.crmUrl);
  await (await new InitializeBuilder())
    .environment(environment)
    .token(token)
    .store(store)
    .resourcePath(resourcePath)
    .initialize();
  return token;
}

