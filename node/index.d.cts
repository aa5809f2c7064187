// Type declarations of zoho-token-store (its CommonJS entry; index.d.ts, of
// the ES module entry, re-exports these): a Zoho CRM JavaScript SDK
// TokenStore on AWS Secrets Manager.
//
// The package names no Zoho SDK (each is an optional peer), so OAuthToken
// below is the part of the SDKs' OAuthToken class the store uses, shaped so
// that a SecretsManagerStore is assignable, under `--strict`, wherever the
// TypeScript SDKs (typescript-sdk-6.0, 7.0, 8.0) take their `TokenStore`
// (`TokenStore.MasterModel`, `InitializeBuilder.store()`): its methods answer
// what that interface's `Token` asks for.

/** The fields every Zoho SDK's `OAuthToken` has (v2 included), as far as the stores use them. */
export interface OAuthTokenFields {
  getClientId(): string | null | undefined;
  getClientSecret(): string | null | undefined;
  getRefreshToken(): string | null | undefined;
  getAccessToken(): string | null | undefined;
  getGrantToken(): string | null | undefined;
  /** Epoch milliseconds as a string. */
  getExpiresIn(): string | null | undefined;
  getRedirectURL(): string | null | undefined;
  setId(id: string | null): void;
  /** The SDK's `Token` interface: removes the token from the store. */
  remove(): Promise<boolean>;
}

/** A Zoho SDK's `OAuthToken` (of the SDK the store was made for), as far as the store uses it. */
export interface OAuthToken extends OAuthTokenFields {
  getId(): string | null;
  getUserSignature(): { getName(): string } | null | undefined;
  getAPIDomain(): string | null | undefined;
  /** The SDK's `Token` interface: sets the token on an SDK request. */
  authenticate(urlConnection: any): unknown;
  /** The SDK's `Token` interface: revokes the refresh token. */
  revoke(id: string): Promise<boolean | undefined>;
  /** The SDK's `Token` interface: generates an access token. */
  generateToken(): unknown;
}

/** The npm names of the Zoho SDKs the store supports, in the order one is picked when several are installed. */
export type SupportedSdk =
  | "@zohocrm/nodejs-sdk-8.0"
  | "@zohocrm/nodejs-sdk-7.0"
  | "@zohocrm/typescript-sdk-8.0"
  | "@zohocrm/typescript-sdk-7.0"
  | "@zohocrm/typescript-sdk-6.0";

/** The supported Zoho SDKs (see `SupportedSdk`). */
export declare const SUPPORTED_SDKS: readonly SupportedSdk[];

/** The code of every SDKException the store raises (the SDK's `Constants.TOKEN_STORE`). */
export declare const TOKEN_STORE: "TOKEN_STORE";

/** The options of `new SecretsManagerStore(options)`; all optional. */
export interface SecretsManagerStoreOptions {
  /** The namespace of the store's secrets: `{prefix}/tokens/{id}`, `{prefix}/index/...`. Default `"zoho/crm"`. */
  prefix?: string;
  /** The Secrets Manager endpoint; default from the environment (`AWS_ENDPOINT_URL`, ...). */
  endpointUrl?: string;
  /** The AWS region; default from the environment (`AWS_REGION`, ...). */
  region?: string;
  /** Seconds a token read is served from this instance's cache (never past its expiry). Default 300. */
  cacheTtl?: number;
  /** Tokens cached at most. Default 10,000. */
  cacheCapacity?: number;
  /** Schedule deletions with a recovery window of 7 to 30 days instead of deleting at once. */
  recoveryWindowDays?: number;
  /** Seconds for one HTTP attempt to Secrets Manager. Default 3. */
  attemptTimeout?: number;
  /** Seconds for one Secrets Manager call with its retries. Default 10. */
  operationTimeout?: number;
  /**
   * Refresh in the store, once for every process sharing the prefix, before
   * the SDK would (default true): findToken and findTokenById answer a token
   * with more than `refreshAhead` seconds left. false: plain persistence, the
   * SDK refreshes by itself.
   */
  managedRefresh?: boolean;
  /** Seconds before expiry a managed refresh renews an access token. Default 300 (at least 5). */
  refreshAhead?: number;
  /**
   * Where a managed refresh sends a token whose api_domain names no Zoho data
   * center when the SDK's environment names none either (a full token URL or
   * an accounts server's base URL).
   */
  accountsUrl?: string;
  /**
   * The Zoho SDK the store is for, when the application has several: its
   * TokenStore is extended, its OAuthToken and SDKException answered.
   * Default: ZOHO_TOKEN_STORE_SDK, else the first of `SUPPORTED_SDKS` found
   * from the application's folders.
   */
  sdk?: SupportedSdk;
}

/** The SDK's `SDKException` (of the SDK the store was made for), as far as the store uses it. */
export interface SDKException extends Error {
  code: string;
  /** The store's error kind: `invalid_input`, `backend`, `corrupt`, `not_found`, ... */
  kind?: string;
}

/**
 * A managed refresh (or grant exchange) that could not give the SDK a valid
 * access token; an SDKException whose code is `TOKEN_REFRESH_` and the kind
 * in capitals.
 */
export declare class RefreshError extends Error implements SDKException {
  constructor(kind: string, message: string);
  code: string;
  /** `rejected`, `throttled`, `transport`, `unexpected_response`, `invalid_input`, `not_found`, `other`. */
  kind: string;
  /** Whether the same call may succeed later without a new token. */
  readonly retryable: boolean;
}

/** A token as the native store keeps it: the Rust crate's field names. */
export interface StoredToken {
  id?: string | null;
  user_name?: string | null;
  client_id?: string | null;
  client_secret?: string | null;
  refresh_token?: string | null;
  access_token?: string | null;
  grant_token?: string | null;
  /** Epoch milliseconds. */
  expiry_time?: number | null;
  redirect_url?: string | null;
  api_domain?: string | null;
}

/**
 * A Zoho SDK TokenStore keeping tokens in AWS Secrets Manager, with the SDK
 * FileStore's semantics. At run time it extends the SDK's `TokenStore` class
 * where the SDK has one (nodejs-sdk-7.0 and 8.0, so `InitializeBuilder.store()`
 * takes it); for the TypeScript SDKs it is assignable to their `TokenStore`. Every failure rejects with the
 * SDK's SDKException (code `TOKEN_STORE`, `kind` the store's error kind),
 * whose message never holds a secret value.
 */
export declare class SecretsManagerStore {
  constructor(options?: SecretsManagerStoreOptions);
  /** The prefix of the store's secrets. */
  readonly prefix: string;
  /** Whether findToken and findTokenById answer a token the store refreshed. */
  readonly managedRefresh: boolean;
  /** The npm name of the Zoho SDK the store was made for. */
  readonly sdk: SupportedSdk;
  /** Fills `token`'s empty fields from the stored token it matches; `null` when none matches. */
  findToken<T>(token: T): Promise<T | null>;
  /** A new OAuthToken for the token stored under `id`; rejects when there is none. */
  findTokenById(id: string): Promise<OAuthToken>;
  /** Stores `token` (an upsert), then sets its id and fills its empty fields from what is stored. */
  saveToken(token: OAuthToken): Promise<void>;
  /** Deletes the token stored under `id`; rejects when there is none. */
  deleteToken(id: string): Promise<void>;
  /** Every stored token. */
  getTokens(): Promise<OAuthToken[]>;
  /** Deletes every stored token. */
  deleteTokens(): Promise<void>;
  /** `SecretsManagerStore(prefix="...", managedRefresh=true)`: never a token or a credential. */
  toString(): string;
  /** `{ prefix, managedRefresh }` only. */
  toJSON(): { prefix: string; managedRefresh: boolean };
}

/** The fields of an SDK OAuthToken as the native store takes them. */
export declare function fromSdkToken(
  token: OAuthToken,
  options?: { operation?: string; strict?: boolean },
): StoredToken;

/** A new SDK OAuthToken from a stored token. */
export declare function toSdkToken(stored: StoredToken): OAuthToken;

export default SecretsManagerStore;
