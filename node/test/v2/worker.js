// One Lambda of the v2 fleet test, as a child process: initializes the v2
// SDK for EMAIL with its client and refresh token (as an application
// configures it; initialize asks nothing), prints "ready", waits for "go" on
// stdin, then makes CALLS concurrent CRM calls, each of which the SDK
// authenticates through the store, and prints the token's access token
// afterwards, as JSON.
//
//     node test/v2/worker.js PREFIX ACCOUNTS_URL CRM_URL EMAIL CALLS

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { getUsers, initialize, makeStore, sdkToken } from "./support.js";

const [prefix, accountsUrl, crmUrl, email, calls] = process.argv.slice(2);
const scratch = mkdtempSync(join(tmpdir(), "zoho-v2-worker-"));
try {
  const token = await initialize({ accountsUrl, crmUrl }, makeStore(prefix), sdkToken(), scratch, email);
  process.stdout.write("ready\n");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === "go") break;
  lines.close();
  await Promise.all(Array.from({ length: Number(calls) }, () => getUsers()));
  process.stdout.write(`${JSON.stringify(token.getAccessToken())}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
