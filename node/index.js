// zoho-token-store: the Zoho CRM Node SDK's TokenStore on AWS Secrets Manager,
// through the zoho-token-store Rust crate (a napi-rs addon).
//
// The six methods behave as the SDK's own FileStore does, on the SDK's
// OAuthToken objects:
//
// - findToken(token) fills the fields of `token` that are null or undefined
//   from the stored token it matches and resolves to `token` itself, or to
//   null when nothing matches (also when `token` has nothing to match on).
//   Anything that is not an OAuthToken is answered unchanged.
// - saveToken(token) stores it (an upsert), then sets its id and fills its
//   empty fields from the stored token, so `token` equals what is stored.
// - findTokenById(id) resolves to a new OAuthToken; an id that is not stored
//   rejects with SDKException code TOKEN_STORE.
// - deleteToken(id) deletes; an id that is not stored rejects with
//   SDKException code TOKEN_STORE (the SDK's remove() passes it on).
// - getTokens() resolves to an array of new OAuthToken objects;
//   deleteTokens() removes them all.
// - expiresIn is the SDK's string of epoch milliseconds on the way in and
//   out; the store keeps it as a number.
//
// Every failure is a rejection with an SDKException (code TOKEN_STORE) whose
// message names the operation and never contains a token's secret values;
// its `kind` names the crate's error variant (invalid_input, backend, ...).
//
// The matching rules are the Rust crate's, so that Node, Python and Rust
// programs sharing a prefix agree on which token a query finds. They are
// FileStore's (user name, else access token without client credentials,
// else grant or refresh token with both client credentials), with these
// differences in corner cases: an empty string counts as an absent field; a
// query with a refresh token but without both client credentials matches
// nothing (FileStore's operator precedence lets it match); a query with a
// grant token that matches nothing does not go on to try its refresh token;
// and a new token without any of refresh, grant or access token is refused.

import { inspect } from "node:util";

import { loadNative } from "./lib/native.js";
import { sdk } from "./lib/sdk.js";

const { NativeStore } = loadNative();
const { OAuthToken, UserSignature, SDKException } = sdk;
const TokenStore = sdk.TokenStore.TokenStore;

/** The code of every SDKException the store raises (the SDK's Constants.TOKEN_STORE). */
export const TOKEN_STORE = "TOKEN_STORE";
const NOT_FOUND = "Given ID is invalid";

/** The token fields that are strings, by the crate's name, with the SDK getter. */
const TEXT_FIELDS = [
  ["id", (t) => t.getId()],
  ["client_id", (t) => t.getClientId()],
  ["client_secret", (t) => t.getClientSecret()],
  ["refresh_token", (t) => t.getRefreshToken()],
  ["access_token", (t) => t.getAccessToken()],
  ["grant_token", (t) => t.getGrantToken()],
  ["redirect_url", (t) => t.getRedirectURL()],
  ["api_domain", (t) => t.getAPIDomain()],
];

/** An SDKException for `operation` (the message never holds a secret value). */
function storeException(operation, message, kind) {
  const error = new SDKException(
    TOKEN_STORE,
    `Exception in ${operation} - SecretsManagerStore : ${message}`,
  );
  error.kind = kind;
  return error;
}

/** The kind and message of a native error ("kind: message"). */
function nativeParts(error) {
  const text = String(error?.message ?? error);
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(text);
  return match ? { kind: match[1], message: match[2] } : { kind: "other", message: text };
}

/** The SDKException for a native error of `operation`. */
function sdkError(operation, error) {
  const { kind, message } = nativeParts(error);
  return storeException(operation, message, kind);
}

/** A string field of an SDK token, or undefined; anything else is refused. */
function text(operation, name, value) {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (name === "id" && typeof value === "number" && Number.isSafeInteger(value)) {
    return String(value); // FileStore compares ids with ==
  }
  throw storeException(operation, `token field ${name} must be a string`, "invalid_input");
}

/**
 * The SDK's expiresIn (a string of epoch ms) as a number, or undefined. A
 * value that is not a whole number is refused when `strict` (saving it would
 * lose it), else ignored (it plays no part in matching).
 */
function expiryMs(operation, expiresIn, strict) {
  if (expiresIn === null || expiresIn === undefined || expiresIn === "") return undefined;
  const value = typeof expiresIn === "number" ? expiresIn : Number(String(expiresIn).trim());
  if (/^-?\d+$/.test(String(expiresIn).trim()) && Number.isSafeInteger(value)) return value;
  if (!strict) return undefined;
  throw storeException(
    operation,
    "expiresIn must be epoch milliseconds as a string of digits",
    "invalid_input",
  );
}

/**
 * The fields of an SDK OAuthToken as the plain object the native store takes:
 * expiresIn becomes expiry_time, a number of epoch ms; the user signature's
 * name becomes user_name.
 */
export function fromSdkToken(token, { operation = "saveToken", strict = true } = {}) {
  const plain = {};
  for (const [name, get] of TEXT_FIELDS) {
    const value = text(operation, name, get(token));
    if (value !== undefined) plain[name] = value;
  }
  const signature = token.getUserSignature();
  const userName = text(operation, "user_name", signature?.getName?.());
  if (userName !== undefined) plain.user_name = userName;
  const expiry = expiryMs(operation, token.getExpiresIn(), strict);
  if (expiry !== undefined) plain.expiry_time = expiry;
  return plain;
}

/** Whether an SDK field is empty as FileStore tests it (`== null`). */
const empty = (value) => value === null || value === undefined;

/** Sets every empty field of `token` from the `stored` object, as FileStore's merge does. */
function fill(token, stored) {
  if (empty(token.getId())) token.setId(stored.id ?? null);
  if (empty(token.getUserSignature())) {
    token.setUserSignature(stored.user_name ? new UserSignature(stored.user_name) : null);
  }
  if (empty(token.getClientId())) token.setClientId(stored.client_id ?? null);
  if (empty(token.getClientSecret())) token.setClientSecret(stored.client_secret ?? null);
  if (empty(token.getRefreshToken())) token.setRefreshToken(stored.refresh_token ?? null);
  if (empty(token.getAccessToken())) token.setAccessToken(stored.access_token ?? null);
  if (empty(token.getGrantToken())) token.setGrantToken(stored.grant_token ?? null);
  if (empty(token.getExpiresIn()) && !empty(stored.expiry_time)) {
    token.setExpiresIn(String(stored.expiry_time));
  }
  if (empty(token.getRedirectURL())) token.setRedirectURL(stored.redirect_url ?? null);
  if (empty(token.getAPIDomain())) token.setAPIDomain(stored.api_domain ?? null);
  return token;
}

/** A new SDK OAuthToken from a stored token, made as FileStore makes the tokens it reads. */
export function toSdkToken(stored) {
  return fill(Reflect.construct(OAuthToken, []), stored);
}

/** An id as the store takes it, or undefined for one that cannot be stored. */
function storeId(id) {
  if (typeof id === "string") return id;
  if (typeof id === "number" && Number.isSafeInteger(id)) return String(id);
  return undefined;
}

/**
 * A Zoho SDK TokenStore keeping tokens in AWS Secrets Manager.
 *
 * `prefix` is the namespace of its secrets: `{prefix}/tokens/{id}` for each
 * token, `{prefix}/index/...` for the index. Programs (Node, Python or Rust)
 * built with the same prefix share the same tokens.
 *
 * Building it makes no network call. Make one per process (in a Lambda, at
 * module level) and share it: every call runs on the addon's tokio runtime,
 * off the JavaScript thread, and concurrent calls run concurrently.
 */
export class SecretsManagerStore extends TokenStore {
  /** The native store: private, so that inspection never reaches it. */
  #native;

  /**
   * @param {object} [options]
   * @param {string} [options.prefix="zoho/crm"] the namespace of the store's secrets
   * @param {string} [options.endpointUrl] Secrets Manager endpoint (default: AWS_ENDPOINT_URL, ...)
   * @param {string} [options.region] AWS region (default: AWS_REGION, ...)
   * @param {number} [options.cacheTtl=300] seconds a token read is served from cache
   * @param {number} [options.cacheCapacity=10000] tokens cached at most
   * @param {number} [options.recoveryWindowDays] schedule deletions with a 7 to 30 day window
   * @param {number} [options.attemptTimeout=3] seconds for one HTTP attempt
   * @param {number} [options.operationTimeout=10] seconds for one call with its retries
   */
  constructor(options = {}) {
    super();
    const {
      prefix = "zoho/crm",
      endpointUrl,
      region,
      cacheTtl = 300,
      cacheCapacity,
      recoveryWindowDays,
      attemptTimeout,
      operationTimeout,
    } = options ?? {};
    try {
      this.#native = new NativeStore({
        prefix,
        endpointUrl,
        region,
        cacheTtl,
        cacheCapacity,
        recoveryWindowDays,
        attemptTimeout,
        operationTimeout,
      });
    } catch (error) {
      throw sdkError("SecretsManagerStore", error);
    }
  }

  /** The prefix of the store's secrets. */
  get prefix() {
    return this.#native.prefix;
  }

  /** Shows the prefix only: never a token or a credential. */
  toString() {
    return `SecretsManagerStore(prefix=${JSON.stringify(this.prefix)})`;
  }

  /** What JSON.stringify shows: the prefix only. */
  toJSON() {
    return { prefix: this.prefix };
  }

  /** What util.inspect and console.log show: the prefix only. */
  [inspect.custom]() {
    return this.toString();
  }

  /**
   * Fills `token`'s empty fields from the stored token it matches and
   * resolves to `token`; null when nothing matches.
   */
  async findToken(token) {
    if (!(token instanceof OAuthToken)) return token;
    const signature = token.getUserSignature();
    if (!empty(signature) && !signature.getName?.()) {
      return null; // FileStore: a user signature decides alone, and an empty name matches nothing
    }
    let found;
    try {
      found = await this.#native.findToken(
        fromSdkToken(token, { operation: "findToken", strict: false }),
      );
    } catch (error) {
      if (error instanceof SDKException) throw error;
      if (nativeParts(error).kind === "invalid_input") return null; // nothing to match on
      throw sdkError("findToken", error);
    }
    return found ? fill(token, found) : null;
  }

  /** A new OAuthToken for the token stored under `id`; rejects when there is none. */
  async findTokenById(id) {
    const key = storeId(id);
    if (key === undefined) throw storeException("findTokenById", NOT_FOUND, "not_found");
    let found;
    try {
      found = await this.#native.findTokenById(key);
    } catch (error) {
      if (nativeParts(error).kind !== "invalid_input") throw sdkError("findTokenById", error);
      found = null; // a malformed id is never stored
    }
    if (!found) throw storeException("findTokenById", NOT_FOUND, "not_found");
    return toSdkToken(found);
  }

  /**
   * Stores `token`, then sets its id and fills its empty fields from what
   * is stored. Anything that is not an OAuthToken is answered unchanged.
   */
  async saveToken(token) {
    if (!(token instanceof OAuthToken)) return token;
    const plain = fromSdkToken(token, { operation: "saveToken", strict: true });
    let stored;
    try {
      stored = await this.#native.saveToken(plain);
    } catch (error) {
      throw sdkError("saveToken", error);
    }
    token.setId(stored.id);
    fill(token, stored);
  }

  /** Deletes the token stored under `id`; rejects when there is none. */
  async deleteToken(id) {
    const key = storeId(id);
    let existed = false;
    if (key !== undefined) {
      try {
        existed = await this.#native.deleteToken(key);
      } catch (error) {
        if (nativeParts(error).kind !== "invalid_input") throw sdkError("deleteToken", error);
      }
    }
    if (!existed) throw storeException("deleteToken", NOT_FOUND, "not_found");
  }

  /** Every stored token, as an array of new OAuthToken objects. */
  async getTokens() {
    try {
      return (await this.#native.getTokens()).map(toSdkToken);
    } catch (error) {
      throw sdkError("getTokens", error);
    }
  }

  /** Deletes every stored token. */
  async deleteTokens() {
    try {
      await this.#native.deleteTokens();
    } catch (error) {
      throw sdkError("deleteTokens", error);
    }
  }
}

export default SecretsManagerStore;
