// The store class, defined once per Zoho SDK (defineStore): it extends that
// SDK's TokenStore where it has a class, and answers that SDK's OAuthToken
// and SDKException. The native store is the zoho-token-store Rust crate's (a
// napi-rs addon).
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
// Managed refresh (managedRefresh: true, the default) changes what findToken
// and findTokenById answer: the stored token with an access token that has
// more than refreshAhead seconds left, refreshed first through the Rust
// crate's ZohoAuth when it has less (one refresh per token for every process,
// Node, Python or Rust, sharing the prefix), so that the SDK, which refreshes
// by itself only when under 5 seconds are left, never calls Zoho on its own.
// A query that matches nothing but carries a grant token is exchanged once
// for the fleet, and the saved token answered. A refresh that cannot be made
// rejects with a RefreshError (an SDKException), see there.
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

"use strict";

const {
  NOT_FOUND,
  TOKEN_STORE,
  TOKEN_TEXT_FIELDS,
  defineCommon,
  describeStore,
  empty,
  nativeParts,
  storeId,
} = require("./common.cjs");

/** Warm answers kept at most per store (a bound on memory, not on correctness). */
const WARM_ENTRIES = 10_000;

/**
 * The store's classes and token conversions for `sdk` (see lib/sdk.cjs; undefined
 * when no SDK was found, for a class whose constructor says so or loads the
 * one its `sdk` option names), on the addon's `NativeStore`. `storeFor(name)`
 * is the SecretsManagerStore class of another SDK, and `isStore(value)`
 * whether `value` is a store of any of them.
 */
function defineStore(sdk, { NativeStore, storeFor, isStore }) {
  const { OAuthToken, UserSignature, Initializer, Utility } = sdk ?? {};
  const Base = sdk?.TokenStore ?? Object;
  const { storeException, RefreshError, sdkError, sdkAccountsUrl, text, expiryMs, openNative, storedById } =
    defineCommon(sdk);

  /** The token fields that are strings, by the crate's name, with the SDK getter. */
  const TEXT_FIELDS = [["id", (t) => t.getId()], ...TOKEN_TEXT_FIELDS, ["api_domain", (t) => t.getAPIDomain()]];

  /**
   * The fields of an SDK OAuthToken as the plain object the native store takes:
   * expiresIn becomes expiry_time, a number of epoch ms; the user signature's
   * name becomes user_name.
   */
  function fromSdkToken(token, { operation = "saveToken", strict = true } = {}) {
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
  function toSdkToken(stored) {
    return fill(Reflect.construct(OAuthToken, []), stored);
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
  class SecretsManagerStore extends Base {
    /** The native store: private, so that inspection never reaches it. */
    #native;
    /** Whether findToken and findTokenById answer a token refreshed by the store. */
    #managed;
    /** Warm findTokenById answers by id: `{ revision, token }` (see there). */
    #warm = new Map();

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
     * @param {boolean} [options.managedRefresh=true] refresh in the store, once for the fleet
     * @param {number} [options.refreshAhead=300] seconds before expiry a managed refresh renews
     * @param {string} [options.accountsUrl] accounts URL for tokens whose api_domain is not Zoho's,
     *   when the SDK's environment names none
     */
    constructor(options = {}) {
      const wanted = options?.sdk;
      if (sdk === undefined || (wanted !== undefined && wanted !== sdk.name)) {
        // Another SDK than the one this class extends (or none was found when
        // the package loaded): the class for that one, or its loading error.
        return new (storeFor(wanted))(options);
      }
      super();
      ({ native: this.#native, managed: this.#managed } = openNative(NativeStore, options));
    }

    /** The prefix of the store's secrets. */
    get prefix() {
      return this.#native.prefix;
    }

    /** The npm name of the Zoho SDK whose TokenStore, OAuthToken and SDKException the store uses. */
    get sdk() {
      return sdk.name;
    }

    /** Whether `value` is a store of this package, whichever SDK it was made for. */
    static [Symbol.hasInstance](value) {
      if (this !== SecretsManagerStore) return Function.prototype[Symbol.hasInstance].call(this, value);
      return isStore(value);
    }

    /** Whether findToken and findTokenById answer a token the store refreshed. */
    get managedRefresh() {
      return this.#managed;
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
      const query = fromSdkToken(token, { operation: "findToken", strict: false });
      let found;
      try {
        found = this.#managed
          ? await this.#native.managedFindToken(query, await sdkAccountsUrl())
          : await this.#native.findToken(query);
      } catch (error) {
        if (nativeParts(error).kind === "invalid_input") return null; // nothing to match on
        throw sdkError("findToken", error);
      }
      if (!found) return null;
      if (this.#managed) {
        if (token.getGrantToken() && !found.user_name && empty(token.getUserSignature())) {
          found = await this.#nameUser(token, found);
        }
        // The access token answered, not one the query carried.
        token.setAccessToken(found.access_token ?? null);
        token.setExpiresIn(empty(found.expiry_time) ? null : String(found.expiry_time));
      }
      return fill(token, found);
    }

    /**
     * After a grant exchange: names the token's CRM user and saves the name,
     * as the SDK does when it saves a token it generated (its
     * Utility.getUserName, calls to the CRM API), unless the SDK token was made
     * with findUser false or the SDK is not initialized. A failure leaves the token unnamed (the SDK logs and
     * goes on too); so does a name that cannot be saved (another stored token
     * has it).
     */
    async #nameUser(token, found) {
      if (token.findUser === false || !found.access_token) return found;
      let name;
      try {
        // Outside an initialized SDK there is no CRM to ask (and the SDK would log an error).
        if (!(await Initializer.getInitializer())) return found;
        name = await new Utility().getUserName(found.access_token);
      } catch {
        return found; // the SDK goes on without a name too
      }
      if (!name) return found;
      try {
        return await this.#native.saveToken({ id: found.id, user_name: name });
      } catch {
        return found; // e.g. another stored token already has that user name
      }
    }

    /** A new OAuthToken for the token stored under `id`; rejects when there is none. */
    async findTokenById(id) {
      const key = storeId(id);
      if (key === undefined) throw storeException("findTokenById", NOT_FOUND, "not_found");
      // The SDK looks its token up before every request: a warm hit is
      // answered on this thread, by the native cache's own rules (its TTL,
      // the token's expiry, this process's saves and deletes, and with
      // managed refresh the refresh-ahead point), with no trip to the runtime.
      const revision = this.#native.warmRevision(key, this.#managed);
      if (revision !== null) {
        // The conversion of that revision, kept; a new revision is fetched
        // with its token (also answered by the native cache's rules).
        let warm = this.#warm.get(key);
        if (warm?.revision !== revision) {
          warm = this.#native.warmFindTokenById(key, this.#managed);
          if (this.#warm.size >= WARM_ENTRIES) this.#warm.clear();
          if (warm) this.#warm.set(key, warm);
        }
        if (warm) return toSdkToken(warm.token);
      }
      return toSdkToken(await storedById(this.#native, this.#managed, "findTokenById", key));
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
      this.#warm.delete(stored.id); // its revision changed: free the old answer
      token.setId(stored.id);
      fill(token, stored);
    }

    /** Deletes the token stored under `id`; rejects when there is none. */
    async deleteToken(id) {
      const key = storeId(id);
      let existed = false;
      if (key !== undefined) {
        this.#warm.delete(key);
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
      this.#warm.clear();
      try {
        await this.#native.deleteTokens();
      } catch (error) {
        throw sdkError("deleteTokens", error);
      }
    }
  }

  describeStore(SecretsManagerStore);
  return { SecretsManagerStore, RefreshError, fromSdkToken, toSdkToken };
}

exports.TOKEN_STORE = TOKEN_STORE;
exports.defineStore = defineStore;
