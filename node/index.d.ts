// Type declarations of zoho-token-store: the Zoho CRM Node SDK's TokenStore on
// AWS Secrets Manager.

// The SDK ships no type declarations: OAuthToken below is the part of the
// SDK's OAuthToken class the store uses.

/** The SDK's `OAuthToken` (from `@zohocrm/nodejs-sdk-8.0`), as far as the store uses it. */
export interface OAuthToken {
  getId(): string | null | undefined;
  setId(id: string | null): void;
  getUserSignature(): { getName(): string } | null | undefined;
  getClientId(): string | null | undefined;
  getClientSecret(): string | null | undefined;
  getRefreshToken(): string | null | undefined;
  getAccessToken(): string | null | undefined;
  getGrantToken(): string | null | undefined;
  /** Epoch milliseconds as a string. */
  getExpiresIn(): string | null | undefined;
  getRedirectURL(): string | null | undefined;
  getAPIDomain(): string | null | undefined;
}

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
}

/** The SDK's `SDKException` (from `@zohocrm/nodejs-sdk-8.0`), as far as the store uses it. */
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
 * (so `InitializeBuilder.store()` takes it). Every failure rejects with the
 * SDK's SDKException (code `TOKEN_STORE`, `kind` the store's error kind),
 * whose message never holds a secret value.
 */
export declare class SecretsManagerStore {
  constructor(options?: SecretsManagerStoreOptions);
  /** The prefix of the store's secrets. */
  readonly prefix: string;
  /** Whether findToken and findTokenById answer a token the store refreshed. */
  readonly managedRefresh: boolean;
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
