// What the Zoho Node SDK pays per CRM request to look up its token, through
// SecretsManagerStore (warm cache, with and without managed refresh), and in
// the same run through three baselines: a plain in-memory TokenStore (an
// object in memory, no I/O: the floor), the SDK's own FileStore (which reads
// its CSV file on every lookup), and a naive @aws-sdk/client-secrets-manager
// store that calls GetSecretValue every time.
//
// Every CRM request the SDK makes authenticates with OAuthToken.getToken(),
// which looks the token up in the store (findToken, or findTokenById once the
// token has an id, as it has after initialize); this script times getToken()
// after InitializeBuilder.initialize(), with a valid stored token (so nothing
// is refreshed and no Zoho server is contacted).
//
//     export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test \
//            AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
//     node bench/get_token.mjs [--calls 5000] [--naive-calls 500] [--rounds 5]
//
// The stores take turns: each round times `calls` lookups of each (after
// the SDK's initialize with that store), so that a slow spell of a shared
// machine falls on all of them; the figures are the medians over every
// call of every round, and the ratios are against the in-memory store.
// Set ZTS_TEST_SDK (and ZTS_TEST_APP) to time another SDK (test/under_test.js).
//
// It needs LocalStack, the addon built (npm run build) and the dev
// dependencies, and deletes the secrets it creates.

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { SDK_NAME, pkg, sdk } from "../test/under_test.js";

const { Environment, FileStore, InitializeBuilder, OAuthBuilder, OAuthToken, UserSignature } = sdk;
// The TypeScript SDKs' TokenStore is a type only: their stores extend nothing.
const TokenStoreBase = typeof sdk.TokenStore?.TokenStore === "function" ? sdk.TokenStore.TokenStore : Object;
const { SecretsManagerStore } = pkg;

const CLIENT_ID = "1000.BENCH";
const CLIENT_SECRET = "bench-secret";
const REFRESH = "1000.bench-refresh";
const USER = "bench@example.com";
const NOWHERE = "http://127.0.0.1:9";

/**
 * The store a Lambda author writes first: one secret, read with
 * GetSecretValue on every lookup, no cache. Enough of the interface for this
 * benchmark: its one secret holds the one token it serves. After its first
 * lookup the SDK's token has an id, so each later request goes through
 * findTokenById: one GetSecretValue here.
 */
class NaiveStore extends TokenStoreBase {
  constructor(read) {
    super();
    this.read = read;
  }

  async findToken(token) {
    return this.fill(token);
  }

  async findTokenById() {
    return this.fill(Reflect.construct(OAuthToken, []));
  }

  async fill(token) {
    const value = await this.read();
    if (token.getId() == null) token.setId(value.id);
    if (token.getClientId() == null) token.setClientId(value.client_id);
    if (token.getClientSecret() == null) token.setClientSecret(value.client_secret);
    if (token.getRefreshToken() == null) token.setRefreshToken(value.refresh_token);
    if (token.getAccessToken() == null) token.setAccessToken(value.access_token);
    if (token.getExpiresIn() == null) token.setExpiresIn(value.expires_in);
    if (token.getAPIDomain() == null) token.setAPIDomain(value.api_domain);
    if (token.getUserSignature() == null) token.setUserSignature(new UserSignature(value.user_name));
    return token;
  }

  async saveToken() {
    throw new Error("the benchmark never saves through the naive store");
  }
}

/** Microseconds per getToken() (one per CRM request), after initialize. */
async function timeGetToken(store, calls, resourcePath) {
  const token = new OAuthBuilder().clientId(CLIENT_ID).clientSecret(CLIENT_SECRET).refreshToken(REFRESH).build();
  await (await new InitializeBuilder())
    .environment(new Environment(NOWHERE, `${NOWHERE}/oauth/v2/token`, NOWHERE))
    .token(token)
    .store(store)
    .resourcePath(resourcePath)
    .initialize();
  const samples = [];
  for (let i = 0; i < calls; i++) {
    const start = process.hrtime.bigint();
    await token.getToken();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return samples;
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return {
    calls: sorted.length,
    mean_us: Number(mean.toFixed(1)),
    median_us: Number((sorted[Math.floor(sorted.length / 2)]).toFixed(1)),
    p99_us: Number((sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]).toFixed(1)),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      calls: { type: "string", default: "5000" },
      "naive-calls": { type: "string", default: "500" },
      rounds: { type: "string", default: "5" },
    },
  });
  const calls = Number(values.calls);
  const rounds = Number(values.rounds);
  const endpoint = process.env.AWS_ENDPOINT_URL ?? "http://127.0.0.1:4566";
  const region = process.env.AWS_REGION ?? "us-east-1";
  const prefix = `bench/node-${randomBytes(4).toString("hex")}`;
  const client = new SecretsManagerClient({ endpoint, region });
  const resources = mkdtempSync(join(tmpdir(), "zoho-bench-"));
  const expiresIn = String(Date.now() + 3_600_000);
  const samples = {};
  try {
    const stored = new OAuthToken(CLIENT_ID, CLIENT_SECRET, null, REFRESH);
    stored.setUserSignature(new UserSignature(USER));
    stored.setAccessToken("1000.bench-access");
    stored.setExpiresIn(expiresIn);
    stored.setAPIDomain(NOWHERE);

    const value = {
      id: "naive",
      user_name: USER,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      refresh_token: REFRESH,
      access_token: "1000.bench-access",
      expires_in: expiresIn,
      api_domain: NOWHERE,
    };
    const name = `${prefix}-naive/token`;
    await client.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(value) }));

    const fileStore = new FileStore(join(resources, "tokens.csv"));
    await fileStore.saveToken(stored);
    const stores = [
      ["object in memory, no I/O", new NaiveStore(async () => ({ ...value })), calls],
      ["SecretsManagerStore (warm)", new SecretsManagerStore({ prefix, endpointUrl: endpoint, region }), calls],
      [
        "SecretsManagerStore (warm), managedRefresh: false",
        new SecretsManagerStore({ prefix, endpointUrl: endpoint, region, managedRefresh: false }),
        calls,
      ],
      ["the SDK's FileStore", fileStore, calls],
      [
        "naive GetSecretValue",
        new NaiveStore(async () => {
          const answer = await client.send(new GetSecretValueCommand({ SecretId: name }));
          return JSON.parse(answer.SecretString);
        }),
        Number(values["naive-calls"]),
      ],
    ];
    await stores[1][1].saveToken(stored);
    for (let round = 0; round < rounds; round++) {
      for (const [label, store, count] of stores) {
        samples[label] = (samples[label] ?? []).concat(await timeGetToken(store, count, resources));
      }
    }
  } finally {
    rmSync(resources, { recursive: true, force: true });
    for (const filter of [`${prefix}/`, `${prefix}-naive/`]) {
      const page = await client.send(new ListSecretsCommand({ Filters: [{ Key: "name", Values: [filter] }] }));
      for (const secret of page.SecretList ?? []) {
        await client.send(new DeleteSecretCommand({ SecretId: secret.Name, ForceDeleteWithoutRecovery: true }));
      }
    }
  }
  const results = Object.fromEntries(Object.entries(samples).map(([label, list]) => [label, summary(list)]));
  const floor = results["object in memory, no I/O"].median_us;
  const over_in_memory = Object.fromEntries(
    Object.entries(results).map(([label, result]) => [label, Number((result.median_us / floor).toFixed(2))]),
  );
  console.log(JSON.stringify({ sdk: SDK_NAME, rounds, results, median_over_in_memory: over_in_memory }, null, 2));
}

await main();
