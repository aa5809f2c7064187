// Type declarations of zoho-token-store/v2 (its CommonJS entry; v2.d.ts, of
// the ES module entry, re-exports these): the TokenStore of the Zoho CRM
// JavaScript SDKs of the v2 interface on AWS Secrets Manager.
//
// OAuthToken below is the part of the v2 SDKs' OAuthToken class the store
// uses, shaped so that a SecretsManagerStore is assignable, under `--strict`,
// wherever typescript-sdk-2.0 and 2.1 take their `TokenStore`.

import type { OAuthTokenFields, SecretsManagerStoreOptions } from "./index.cjs";

export type { SDKException } from "./index.cjs";
export { RefreshError, TOKEN_STORE } from "./index.cjs";

/** A v2 Zoho SDK's `OAuthToken` (of the SDK the store was made for), as far as the store uses it. */
export interface OAuthToken extends OAuthTokenFields {
  getId(): string | null | undefined;
  getUserMail(): string | null | undefined;
  /** The SDK's `Token` interface: sets the token on an SDK request. */
  authenticate(urlConnection: any): Promise<void>;
}

/** A v2 Zoho SDK's `UserSignature`: its email (typescript-sdk-2.0 calls it its name). */
export type UserSignature = { getEmail(): string } | { getName(): string };

/** The npm names of the v2 Zoho SDKs the store supports, in the order one is picked when several are installed. */
export type SupportedV2Sdk = "@zohocrm/nodejs-sdk-2.0" | "@zohocrm/typescript-sdk-2.1" | "@zohocrm/typescript-sdk-2.0";

/** The supported v2 Zoho SDKs (see `SupportedV2Sdk`). */
export declare const SUPPORTED_SDKS: readonly SupportedV2Sdk[];

/** The options of `new SecretsManagerStore(options)`: the main entry's, with a v2 SDK's name for `sdk`. */
export interface V2StoreOptions extends Omit<SecretsManagerStoreOptions, "sdk"> {
  /**
   * The v2 Zoho SDK the store is for, when the application has several.
   * Default: ZOHO_TOKEN_STORE_SDK when it names one, else the first of
   * `SUPPORTED_SDKS` found from the application's folders.
   */
  sdk?: SupportedV2Sdk;
}

/**
 * A v2 Zoho SDK TokenStore keeping tokens in AWS Secrets Manager, with the
 * SDK FileStore's semantics and the secrets of the main entry's store (the
 * user's email is the stored token's user name). At run time it extends
 * nodejs-sdk-2.0's `TokenStore` class (which `InitializeBuilder.store()`
 * checks); for the TypeScript SDKs it is assignable to their `TokenStore`.
 * Every failure rejects with the SDK's SDKException (code `TOKEN_STORE`), or
 * a RefreshError for a managed refresh, whose message never holds a secret.
 */
export declare class SecretsManagerStore {
  constructor(options?: V2StoreOptions);
  /** The prefix of the store's secrets. */
  readonly prefix: string;
  /** Whether getToken and getTokenById answer a token the store refreshed. */
  readonly managedRefresh: boolean;
  /** The npm name of the v2 Zoho SDK the store was made for. */
  readonly sdk: SupportedV2Sdk;
  /**
   * Sets `token`'s access token, expiresIn, refresh token, id and user mail
   * from the stored token of `user` with `token`'s client and grant (or
   * refresh) token; when none, `undefined` (`null` with nodejs-sdk-2.0, as
   * each SDK's FileStore answers).
   */
  getToken(user: UserSignature, token: OAuthToken): Promise<OAuthToken | undefined>;
  /** Sets every field of `token` from the token stored under `id`; rejects when there is none. */
  getTokenById(id: string, token: OAuthToken): Promise<OAuthToken | undefined>;
  /** Stores `token` as `user`'s token (replacing the one stored), then sets its user mail and id. */
  saveToken(user: UserSignature, token: OAuthToken): Promise<void>;
  /** Deletes the stored token getToken would find for `token`'s user mail; nothing when there is none. */
  deleteToken(token: OAuthToken): Promise<void>;
  /** Every stored token. */
  getTokens(): Promise<OAuthToken[]>;
  /** Deletes every stored token. */
  deleteTokens(): Promise<void>;
  /** `SecretsManagerStore(prefix="...", managedRefresh=true)`: never a token or a credential. */
  toString(): string;
  /** `{ prefix, managedRefresh }` only. */
  toJSON(): { prefix: string; managedRefresh: boolean };
}

export default SecretsManagerStore;
