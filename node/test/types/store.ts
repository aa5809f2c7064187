// Compiled by tests/node-sdks with `tsc --strict --noEmit` in an application
// on one TypeScript Zoho SDK (SDK_NAME is replaced by its npm name), under
// `--module commonjs` and `--module nodenext`: the store is accepted wherever
// the SDK takes its TokenStore, and answers what the SDK's Token interface
// asks for.
import * as ZOHOCRMSDK from "SDK_NAME";
import { RefreshError, SecretsManagerStore, TOKEN_STORE } from "zoho-token-store";
import type { SecretsManagerStoreOptions, SupportedSdk } from "zoho-token-store";

const sdk: SupportedSdk = "SDK_NAME";
const options: SecretsManagerStoreOptions = { prefix: "zoho/crm", managedRefresh: true, sdk };
const store: ZOHOCRMSDK.TokenStore.MasterModel = new SecretsManagerStore(options);

export async function initialize(): Promise<void> {
  const token = new ZOHOCRMSDK.OAuthBuilder().clientId("id").clientSecret("secret").refreshToken("refresh").build();
  await new ZOHOCRMSDK.InitializeBuilder()
    .environment(ZOHOCRMSDK.USDataCenter.PRODUCTION())
    .token(token)
    .store(new SecretsManagerStore())
    .initialize();
  const found: ZOHOCRMSDK.Token.MasterModel | null | void = await store.findTokenById("1");
  const all: ZOHOCRMSDK.Token.MasterModel[] | null = await store.getTokens();
  console.log(found?.getId(), all?.length, TOKEN_STORE);
}

export function describe(error: unknown): string {
  if (error instanceof RefreshError) return `${error.kind} ${error.code} ${error.retryable}`;
  return String(error);
}
