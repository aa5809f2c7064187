// Shared test helpers: LocalStack, a fresh prefix per test, stores, the Rust peer.
//
// The tests need LocalStack (Secrets Manager) at AWS_ENDPOINT_URL (default
// http://127.0.0.1:4566; start it with localstack/start at the repository
// root). Importing this module fails the test file, never skips it, when
// LocalStack does not answer. Each test works under its own prefix,
// nodetest/run-<pid>-<start>/<random> (the process that made it and its start
// time, so that the repository's localstack/clean can delete what a killed
// run left), and deletes every secret under it at the end.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

import {
  DeleteSecretCommand,
  ListSecretsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";

import { pkg } from "./under_test.js";

const { SecretsManagerStore } = pkg;

/** The node/ folder. */
export const PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

process.env.AWS_ACCESS_KEY_ID ??= "test";
process.env.AWS_SECRET_ACCESS_KEY ??= "test";
process.env.AWS_REGION ??= "us-east-1";
// The AWS SDK for JavaScript warns on Node 20 at its first client: noise in the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
export const REGION = process.env.AWS_REGION;

/** The LocalStack endpoint; throws (failing the test file) when it does not answer. */
async function requireLocalStack() {
  const url = (process.env.AWS_ENDPOINT_URL || "http://127.0.0.1:4566").replace(/\/+$/, "");
  let health;
  try {
    const response = await fetch(`${url}/_localstack/health`, { signal: AbortSignal.timeout(5000) });
    health = await response.json();
  } catch (error) {
    throw new Error(
      `LocalStack does not answer at ${url} (${error.cause?.code ?? error.message}): start it with localstack/start`,
    );
  }
  const state = health?.services?.secretsmanager;
  if (state !== "available" && state !== "running") {
    throw new Error(`LocalStack at ${url} has no Secrets Manager (state ${JSON.stringify(state)})`);
  }
  process.env.AWS_ENDPOINT_URL = url;
  return url;
}

/** The LocalStack endpoint every test uses. */
export const ENDPOINT = await requireLocalStack();

/** A JavaScript Secrets Manager client on LocalStack (to inspect and clean up). */
export const secretsManager = new SecretsManagerClient({ endpoint: ENDPOINT, region: REGION });

/** Every secret name under `prefix/` (ListSecrets is immediate on LocalStack). */
export async function secretNames(prefix) {
  const names = [];
  let NextToken;
  do {
    const page = await secretsManager.send(
      new ListSecretsCommand({
        Filters: [{ Key: "name", Values: [`${prefix}/`] }],
        IncludePlannedDeletion: true,
        NextToken,
      }),
    );
    for (const secret of page.SecretList ?? []) {
      if (secret.Name.startsWith(`${prefix}/`)) names.push(secret.Name);
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return names;
}

/** Deletes every secret under `prefix/` and checks that none is left. */
export async function deleteAll(prefix) {
  for (const name of await secretNames(prefix)) {
    await secretsManager.send(
      new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }),
    );
  }
  assert.deepEqual(await secretNames(prefix), [], `secrets left under ${prefix}`);
}

/** This process's start time (field 22 of /proc/self/stat), or "0" where there is no /proc. */
function processStart() {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // The command name (field 2) may hold spaces: fields after it follow the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return "0";
  }
}

/** The prefix segment naming this test process: `run-<pid>-<start>`. */
const RUN = `run-${process.pid}-${processStart()}`;

/** A prefix of the test `t`'s own; every secret under it is deleted after the test. */
export function newPrefix(t) {
  const prefix = `nodetest/${RUN}/${randomBytes(6).toString("hex")}`;
  t.after(() => deleteAll(prefix));
  return prefix;
}

/** A store on LocalStack under `prefix`. */
export function makeStore(prefix, options = {}) {
  return new SecretsManagerStore({ prefix, endpointUrl: ENDPOINT, region: REGION, ...options });
}

let peer;
/**
 * Runs the Rust example `rust_peer` (built once, in the dev profile, honouring
 * CARGO_TARGET_DIR) and answers its JSON: `rustPeer(command, prefix, ...args,
 * { stdin })`.
 */
export function rustPeer(command, prefix, ...rest) {
  const options = typeof rest.at(-1) === "object" ? rest.pop() : {};
  if (!peer) {
    const build = execFileSync(
      "cargo",
      [
        "build",
        "--quiet",
        "--manifest-path",
        join(PACKAGE_DIR, "..", "Cargo.toml"), // the root crate's example, shared with python/
        "--example",
        "rust_peer",
        "--message-format=json",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 },
    );
    for (const line of build.split("\n")) {
      if (!line.startsWith("{")) continue;
      const message = JSON.parse(line);
      if (message.reason === "compiler-artifact" && message.target.name === "rust_peer") {
        peer = message.executable;
      }
    }
    assert.ok(peer, "cargo built no rust_peer executable");
  }
  const output = execFileSync(peer, [command, prefix, ...rest], {
    input: options.stdin ?? "",
    encoding: "utf8",
    timeout: 120_000,
  });
  return JSON.parse(output);
}
