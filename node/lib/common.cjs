// What the store classes of both SDK interfaces share (lib/store.cjs for the
// `findToken` SDKs, lib/store_v2.cjs for the v2 ones): their errors, the
// conversion of the SDK's string fields, the constructor's options and the
// native store they are built on.
"use strict";

const { inspect } = require("node:util");

/** The code of every SDKException the store raises (the SDK's Constants.TOKEN_STORE). */
const TOKEN_STORE = "TOKEN_STORE";
/** The message of an unknown id, as the SDK's FileStore has it. */
const NOT_FOUND = "Given ID is invalid";

/** The options every store constructor takes. */
const OPTIONS = Object.freeze([
  "prefix",
  "endpointUrl",
  "region",
  "cacheTtl",
  "cacheCapacity",
  "recoveryWindowDays",
  "attemptTimeout",
  "operationTimeout",
  "managedRefresh",
  "refreshAhead",
  "accountsUrl",
  "sdk",
]);

/** The refreshAhead default, in seconds (the native store's). */
const REFRESH_AHEAD = 300;

/**
 * The string fields every Zoho SDK's OAuthToken has, by the crate's name,
 * with the SDK getter (the `findToken` SDKs add an id and an API domain).
 */
const TOKEN_TEXT_FIELDS = Object.freeze([
  ["client_id", (t) => t.getClientId()],
  ["client_secret", (t) => t.getClientSecret()],
  ["refresh_token", (t) => t.getRefreshToken()],
  ["access_token", (t) => t.getAccessToken()],
  ["grant_token", (t) => t.getGrantToken()],
  ["redirect_url", (t) => t.getRedirectURL()],
]);

/** Whether an SDK field is empty as FileStore tests it (`== null`). */
const empty = (value) => value === null || value === undefined;

/** An id as the store takes it, or undefined for one that cannot be stored. */
function storeId(id) {
  if (typeof id === "string") return id;
  if (typeof id === "number" && Number.isSafeInteger(id)) return String(id);
  return undefined;
}

/** The kind and message of a native error ("kind: message"). */
function nativeParts(error) {
  const text = String(error?.message ?? error);
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(text);
  return match ? { kind: match[1], message: match[2] } : { kind: "other", message: text };
}

/**
 * Gives a store class (with `prefix` and `managedRefresh` getters) what
 * String(), JSON.stringify and util.inspect show of its stores: the prefix
 * and managedRefresh only, never a token or a credential.
 */
function describeStore(Class) {
  const methods = {
    /** Shows the prefix and managedRefresh only: never a token or a credential. */
    toString() {
      return `SecretsManagerStore(prefix=${JSON.stringify(this.prefix)}, managedRefresh=${this.managedRefresh})`;
    },
    /** What JSON.stringify shows: the prefix and managedRefresh only. */
    toJSON() {
      return { prefix: this.prefix, managedRefresh: this.managedRefresh };
    },
    /** What util.inspect and console.log show: as toString. */
    [inspect.custom]() {
      return this.toString();
    },
  };
  for (const key of Reflect.ownKeys(methods)) {
    // As a class's own methods are: not enumerable.
    Object.defineProperty(Class.prototype, key, { value: methods[key], writable: true, configurable: true });
  }
}

/**
 * The errors and conversions of the stores made for one SDK, whose
 * SDKException they raise and whose Initializer names the accounts URL.
 */
function defineCommon({ SDKException = Error, Initializer } = {}) {
  /** An SDKException for `operation` (the message never holds a secret value). */
  function storeException(operation, message, kind) {
    const error = new SDKException(TOKEN_STORE, `Exception in ${operation} - SecretsManagerStore : ${message}`);
    error.kind = kind;
    return error;
  }

  /**
   * A managed refresh (or grant exchange) that could not give the SDK a valid
   * access token. An SDKException, so the SDK's callers catch it as they catch
   * its own; `kind` says what failed, and `code` is `TOKEN_REFRESH_` followed
   * by it in capitals:
   *
   * - `rejected`: Zoho refused the refresh token or the client (a revoked
   *   refresh token, a wrong client secret, a used grant). The stored token is
   *   unchanged, and no process sharing the prefix asks Zoho again with it
   *   until a token is saved again (re-authorize with a new grant).
   * - `throttled`: Zoho's rate limit (10 access tokens per refresh token in 10
   *   minutes); refreshes are retried after a backoff.
   * - `transport`, `unexpected_response`: the accounts server could not be
   *   reached, or answered nonsense; retried after a backoff.
   * - `invalid_input`: e.g. no accounts server is known for the token (its
   *   api_domain is not Zoho's, the SDK is not initialized and the store has
   *   no accountsUrl); nothing was sent.
   *
   * Its message names the token id and Zoho's error code, never a secret.
   */
  class RefreshError extends SDKException {
    constructor(kind, message) {
      super(`TOKEN_REFRESH_${kind.toUpperCase()}`, message);
      this.name = "RefreshError";
      this.kind = kind;
    }

    /** Whether the same call may succeed later without a new token. */
    get retryable() {
      return ["throttled", "transport", "unexpected_response"].includes(this.kind);
    }
  }

  const REFRESH_ADVICE = {
    rejected:
      " (a revoked refresh token or wrong client credentials: save a token from a new grant; " +
      "until then no process sharing the prefix asks Zoho again with these)",
    throttled: " (Zoho's limit on access tokens per refresh token; the refresh is retried after a backoff)",
  };

  /** The SDKException (a RefreshError for a managed refresh) for a native error of `operation`. */
  function sdkError(operation, error) {
    const { kind, message } = nativeParts(error);
    if (kind.startsWith("auth_")) {
      const refresh = kind.slice("auth_".length);
      return new RefreshError(
        refresh,
        `Exception in ${operation} - SecretsManagerStore : ${message}${REFRESH_ADVICE[refresh] ?? ""}`,
      );
    }
    return storeException(operation, message, kind);
  }

  /**
   * The accounts URL (the full token URL) of the environment the SDK was
   * initialized with, where the SDK itself would refresh a token whose
   * api_domain names no Zoho data center; undefined outside an initialized SDK.
   */
  async function sdkAccountsUrl() {
    try {
      const url = (await Initializer?.getInitializer())?.getEnvironment?.()?.getAccountsUrl?.();
      return typeof url === "string" && url ? url : undefined;
    } catch {
      return undefined;
    }
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
    throw storeException(operation, "expiresIn must be epoch milliseconds as a string of digits", "invalid_input");
  }

  /**
   * The native store for a constructor's `options` (every name in OPTIONS;
   * any other is refused), with whether it is managed and its refreshAhead in
   * milliseconds: `{ native, managed, refreshAheadMs }`.
   */
  function openNative(NativeStore, options) {
    const unknown = Object.keys(options ?? {}).filter((name) => !OPTIONS.includes(name));
    if (unknown.length > 0) {
      throw storeException("SecretsManagerStore", `unknown option ${unknown.join(", ")}`, "invalid_input");
    }
    const {
      prefix = "zoho/crm",
      endpointUrl,
      region,
      cacheTtl = 300,
      cacheCapacity,
      recoveryWindowDays,
      attemptTimeout,
      operationTimeout,
      managedRefresh = true,
      refreshAhead,
      accountsUrl,
    } = options ?? {};
    let native;
    try {
      native = new NativeStore({
        prefix,
        endpointUrl,
        region,
        cacheTtl,
        cacheCapacity,
        recoveryWindowDays,
        attemptTimeout,
        operationTimeout,
        refreshAhead,
        accountsUrl,
      });
    } catch (error) {
      throw sdkError("SecretsManagerStore", error);
    }
    // The native store has checked refreshAhead (a finite number of seconds).
    const refreshAheadMs = (refreshAhead ?? REFRESH_AHEAD) * 1000;
    return { native, managed: Boolean(managedRefresh), refreshAheadMs };
  }

  /**
   * The token stored under `id` (refreshed first when `managed`, as a managed
   * lookup answers it), for `operation`; an id that is not stored, or cannot
   * be, rejects with SDKException code TOKEN_STORE, as FileStore does.
   */
  async function storedById(native, managed, operation, id) {
    const key = storeId(id);
    if (key === undefined) throw storeException(operation, NOT_FOUND, "not_found");
    let found;
    try {
      found = managed ? await native.managedFindTokenById(key, await sdkAccountsUrl()) : await native.findTokenById(key);
    } catch (error) {
      if (nativeParts(error).kind !== "invalid_input") throw sdkError(operation, error);
      found = null; // a malformed id is never stored
    }
    if (!found) throw storeException(operation, NOT_FOUND, "not_found");
    return found;
  }

  return { storeException, RefreshError, sdkError, sdkAccountsUrl, text, expiryMs, openNative, storedById };
}

exports.TOKEN_STORE = TOKEN_STORE;
exports.NOT_FOUND = NOT_FOUND;
exports.OPTIONS = OPTIONS;
exports.TOKEN_TEXT_FIELDS = TOKEN_TEXT_FIELDS;
exports.empty = empty;
exports.storeId = storeId;
exports.nativeParts = nativeParts;
exports.defineCommon = defineCommon;
exports.describeStore = describeStore;
