// Compiled by tests/node-sdks with `tsc --strict --noEmit` in an application
// on one TypeScript v2 Zoho SDK (SDK_ROOT is replaced by the folder of its
// modules: @zohocrm/typescript-sdk-2.0, @zohocrm/typescript-sdk-2.1/dist),
// under `--module commonjs` and `--module nodenext`: the v2 store is
// accepted wherever the SDK takes its TokenStore, and answers what the SDK's
// Token interface asks for. The SDK's modules are imported by path, as these
// SDKs' own documentation does (with the extension ES modules need).
import { TokenStore } from "SDK_ROOT/models/authenticator/store/token_store.js";
import { OAuthBuilder } from "SDK_ROOT/models/authenticator/oauth_builder.js";
import { Token } from "SDK_ROOT/models/authenticator/token.js";
import { UserSignature } from "SDK_ROOT/routes/user_signature.js";
import { InitializeBuilder } from "SDK_ROOT/routes/initialize_builder.js";
import { USDataCenter } from "SDK_ROOT/routes/dc/us_data_center.js";
import { RefreshError, SecretsManagerStore, TOKEN_STORE } from "zoho-token-store/v2";
import type { SupportedV2Sdk, V2StoreOptions } from "zoho-token-store/v2";

const sdk: SupportedV2Sdk = "SDK_NAME";
const options: V2StoreOptions = { prefix: "zoho/crm", managedRefresh: true, sdk };
const store: TokenStore = new SecretsManagerStore(options);

export async function initialize(user: UserSignature): Promise<void> {
  const token = new OAuthBuilder().clientId("id").clientSecret("secret").refreshToken("refresh").build();
  (await new InitializeBuilder())
    .user(user)
    .environment(USDataCenter.PRODUCTION())
    .token(token)
    .store(new SecretsManagerStore())
    .initialize();
  const found: Token | undefined = await store.getToken(user, token);
  const byId: Token | undefined = await store.getTokenById("1", token);
  const all: Token[] | undefined = await store.getTokens();
  await store.saveToken(user, token);
  await store.deleteToken(token);
  console.log(found, byId, all?.length, TOKEN_STORE);
}

export function describe(error: unknown): string {
  if (error instanceof RefreshError) return `${error.kind} ${error.code} ${error.retryable}`;
  return String(error);
}
