// One Lambda of the managed-refresh tests, as a child process: initializes
// the SDK (with a valid token of another user, so nothing is refreshed),
// prints "ready", waits for "go" on stdin, then runs CALLS concurrent
// getToken() for USER and prints the access tokens it got as JSON.
//
//     node test/sdk_worker.js PREFIX ACCOUNTS_URL CRM_URL USER CALLS MANAGED

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { sdk, pkg } from "./under_test.js";

const { Environment, InitializeBuilder, OAuthBuilder, UserSignature } = sdk;
const { SecretsManagerStore } = pkg;

const [prefix, accountsUrl, crmUrl, user, calls, managed] = process.argv.slice(2);
const store = new SecretsManagerStore({
  prefix,
  endpointUrl: process.env.AWS_ENDPOINT_URL,
  managedRefresh: managed === "true",
});
const resources = mkdtempSync(join(tmpdir(), "zoho-worker-"));
try {
  const starter = new OAuthBuilder().userSignature(new UserSignature("starter@example.com")).build();
  await (await new InitializeBuilder())
    .environment(new Environment(crmUrl, accountsUrl, crmUrl))
    .token(starter)
    .store(store)
    .resourcePath(resources)
    .initialize();
  process.stdout.write("ready\n");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === "go") break;
  lines.close();
  const tokens = await Promise.all(
    Array.from({ length: Number(calls) }, () =>
      new OAuthBuilder().userSignature(new UserSignature(user)).build().getToken(),
    ),
  );
  process.stdout.write(`${JSON.stringify(tokens)}\n`);
} finally {
  rmSync(resources, { recursive: true, force: true });
}
