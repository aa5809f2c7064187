// The store class for a Zoho SDK of the v2 interface (defineV2Store):
// `@zohocrm/nodejs-sdk-2.0`, `@zohocrm/typescript-sdk-2.0` and `-2.1`, whose
// TokenStore takes the user apart from the token. It keeps the same secrets
// as the store of the `findToken` SDKs (lib/store.cjs) and the Python and
// Rust stores: the user's email is the stored token's user name, so a v2 and
// a v8 program sharing a prefix share each user's token, and refresh it once
// between them.
//
// The six methods behave as the SDK's own FileStore does:
//
// - getToken(user, token) looks up the stored token of `user`'s email and,
//   when it has `token`'s client id and its grant token (or, without one, its
//   refresh token), sets `token`'s access token, expiresIn, refresh token, id
//   and user mail from it and resolves to `token`; else to null (undefined
//   with the TypeScript SDKs, as their FileStore answers). A user
//   without an email rejects with SDKException code TOKEN_STORE.
// - saveToken(user, token) sets `token`'s user mail to `user`'s email and
//   stores it as that user's token (replacing the one stored), then sets its
//   id to the stored token's: ids are the store's, not the SDK's.
// - getTokenById(id, token) sets every field of `token` from the token stored
//   under `id` and resolves to `token`; an id that is not stored rejects with
//   SDKException code TOKEN_STORE.
// - deleteToken(token) deletes the stored token of `token`'s user mail that
//   getToken would find; nothing when there is none.
// - getTokens() resolves to an array of new OAuthToken objects;
//   deleteTokens() removes them all.
//
// Managed refresh (managedRefresh: true, the default). The v2 SDK asks its
// store only for a token that has no access token in memory, and refreshes by
// itself when under 5 seconds are left, so every process of a fleet would
// refresh. The store therefore answers getToken and getTokenById with an
// access token that has more than refreshAhead seconds left (refreshed first,
// once for the fleet, through the Rust crate's ZohoAuth), and on each SDK
// token it has filled it has the SDK's authenticate() drop the token's access
// token once it is within refreshAhead of its expiry, so that the SDK asks the
// store again rather than Zoho. A query for a user with nothing stored and a
// grant token is exchanged once for the fleet. A refresh that cannot be made
// rejects with a RefreshError (an SDKException).
"use strict";

const { TOKEN_TEXT_FIELDS, defineCommon, describeStore, empty } = require("./common.cjs");

/** The SDK tokens whose authenticate() the store has wrapped (see watch). */
const watched = new WeakSet();

/**
 * The store's classes for the v2 SDK `sdk` (see loadV2Sdk in lib/sdk.cjs;
 * undefined when none was found, for a class whose constructor loads the one
 * its `sdk` option names, or says none is installed), on the addon's
 * `NativeStore`. `storeFor(name)` is the class of another v2 SDK, and
 * `isStore(value)` whether `value` is a store of any of them.
 */
function defineV2Store(sdk, { NativeStore, storeFor, isStore }) {
  const { OAuthToken } = sdk ?? {};
  /** What getToken answers when nothing matches: what the SDK's own FileStore answers. */
  const NONE = sdk?.name === "@zohocrm/nodejs-sdk-2.0" ? null : undefined;
  const Base = sdk?.TokenStore ?? Object;
  const { storeException, RefreshError, sdkError, sdkAccountsUrl, text, expiryMs, openNative, storedById } =
    defineCommon(sdk);

  /** The email of an SDK UserSignature (typescript-sdk-2.0 calls it its name), or undefined. */
  function emailOf(operation, user) {
    const email = text(operation, "user email", user?.getEmail?.() ?? user?.getName?.());
    return email || undefined;
  }

  /** A user without an email, refused as FileStore refuses it. */
  function noEmail(operation) {
    return storeException(operation, "the user has no email", "invalid_input");
  }

  /**
   * The fields of a v2 SDK OAuthToken as the plain object the native store
   * takes, with `email` as its user name; no id (the store's ids decide).
   */
  function fromV2Token(token, email, { operation, strict }) {
    const plain = { user_name: email };
    for (const [name, get] of TOKEN_TEXT_FIELDS) {
      const value = text(operation, name, get(token));
      if (value !== undefined) plain[name] = value;
    }
    const expiry = expiryMs(operation, token.getExpiresIn(), strict);
    if (expiry !== undefined) plain.expiry_time = expiry;
    return plain;
  }

  /** FileStore's test of a stored row against a query token: same client, same grant or refresh token. */
  function sameGrant(token, stored) {
    if ((stored.client_id ?? null) !== (token.getClientId() ?? null)) return false;
    const grant = token.getGrantToken();
    return empty(grant) ? (stored.refresh_token ?? null) === (token.getRefreshToken() ?? null) : stored.grant_token === grant;
  }

  const expiresIn = (stored) => (empty(stored.expiry_time) ? null : String(stored.expiry_time));

  /** Sets every field of `token` from `stored`, as FileStore's getTokenById does. */
  function fillAll(token, stored) {
    token.setClientId(stored.client_id ?? null);
    token.setClientSecret(stored.client_secret ?? null);
    token.setRefreshToken(stored.refresh_token ?? null);
    token.setId(stored.id);
    if (!empty(stored.grant_token)) token.setGrantToken(stored.grant_token);
    token.setUserMail(stored.user_name ?? null);
    token.setAccessToken(stored.access_token ?? null);
    token.setExpiresIn(expiresIn(stored));
    token.setRedirectURL(stored.redirect_url ?? null);
    return token;
  }

  /** A new SDK OAuthToken from a stored token, as FileStore's getTokens makes them. */
  function toV2Token(stored) {
    return fillAll(
      new OAuthToken(stored.client_id ?? null, stored.client_secret ?? null, null, stored.refresh_token ?? null),
      stored,
    );
  }

  /**
   * Has `token`'s authenticate() (the SDK's step before every request) drop
   * its access token first when it is within `aheadMs` of its expiry: the SDK
   * then asks the store (getTokenById), which refreshes once for the fleet,
   * instead of refreshing by itself at 5 seconds.
   */
  function watch(token, aheadMs) {
    if (watched.has(token) || typeof token.authenticate !== "function") return;
    watched.add(token);
    const authenticate = token.authenticate;
    Object.defineProperty(token, "authenticate", {
      configurable: true,
      writable: true,
      value: function (...args) {
        const expiry = Number(this.getExpiresIn?.());
        if (!empty(this.getAccessToken?.()) && expiry - Date.now() < aheadMs) {
          this.setAccessToken(null);
        }
        return authenticate.apply(this, args);
      },
    });
  }

  /**
   * A Zoho v2 SDK TokenStore keeping tokens in AWS Secrets Manager, with the
   * secrets, options and managed refresh of the package's main store
   * (`prefix` is the namespace of its secrets; programs sharing it share the
   * tokens). Building it makes no network call: make one per process.
   */
  class SecretsManagerStore extends Base {
    /** The native store: private, so that inspection never reaches it. */
    #native;
    /** Whether getToken and getTokenById answer a token refreshed by the store. */
    #managed;
    /** How long before its expiry a token is refreshed, in milliseconds. */
    #aheadMs;

    /**
     * @param {object} [options] the options of the main entry's store
     *   (prefix, endpointUrl, region, cacheTtl, managedRefresh, refreshAhead,
     *   accountsUrl, ...); `sdk` names a v2 SDK
     */
    constructor(options = {}) {
      const wanted = options?.sdk;
      if (sdk === undefined || (wanted !== undefined && wanted !== sdk.name)) {
        return new (storeFor(wanted))(options);
      }
      super();
      ({ native: this.#native, managed: this.#managed, refreshAheadMs: this.#aheadMs } = openNative(
        NativeStore,
        options,
      ));
    }

    /** The prefix of the store's secrets. */
    get prefix() {
      return this.#native.prefix;
    }

    /** The npm name of the Zoho SDK whose TokenStore, OAuthToken and SDKException the store uses. */
    get sdk() {
      return sdk.name;
    }

    /** Whether getToken and getTokenById answer a token the store refreshed. */
    get managedRefresh() {
      return this.#managed;
    }

    /** Whether `value` is a v2 store of this package, whichever SDK it was made for. */
    static [Symbol.hasInstance](value) {
      if (this !== SecretsManagerStore) return Function.prototype[Symbol.hasInstance].call(this, value);
      return isStore(value);
    }

    /** The stored token `token` would be answered (managed: refreshed when due), or null. */
    async #lookup(operation, email, token) {
      let found;
      try {
        // The user name alone: a find lays the query's fields over the
        // stored token's, and FileStore's test needs the stored ones.
        found = await this.#native.findToken({ user_name: email });
        if (found && !sameGrant(token, found)) return null;
        if (!this.#managed) return found;
        const accountsUrl = await sdkAccountsUrl();
        if (found) return await this.#native.managedFindTokenById(found.id, accountsUrl);
        // Nothing stored for the user: a grant is exchanged once for the fleet.
        if (empty(token.getGrantToken())) return null;
        return await this.#native.managedFindToken(fromV2Token(token, email, { operation, strict: false }), accountsUrl);
      } catch (error) {
        throw sdkError(operation, error);
      }
    }

    /** Sets `token`'s access token, expiresIn, refresh token, id and user mail from the token `user` has stored; null when none matches. */
    async getToken(user, token) {
      if (!(token instanceof OAuthToken)) return NONE;
      const email = emailOf("getToken", user);
      if (email === undefined) throw noEmail("getToken");
      const found = await this.#lookup("getToken", email, token);
      if (!found) return NONE;
      token.setAccessToken(found.access_token ?? null);
      token.setExpiresIn(expiresIn(found));
      token.setRefreshToken(found.refresh_token ?? null);
      token.setId(found.id);
      token.setUserMail(found.user_name ?? email);
      if (this.#managed) watch(token, this.#aheadMs);
      return token;
    }

    /** Sets every field of `token` from the token stored under `id`; rejects when there is none. */
    async getTokenById(id, token) {
      const found = await storedById(this.#native, this.#managed, "getTokenById", id);
      if (!(token instanceof OAuthToken)) return toV2Token(found);
      fillAll(token, found);
      if (this.#managed) watch(token, this.#aheadMs);
      return token;
    }

    /** Stores `token` as `user`'s token, then sets its user mail and id. */
    async saveToken(user, token) {
      if (!(token instanceof OAuthToken)) return;
      const email = emailOf("saveToken", user);
      if (email === undefined) throw noEmail("saveToken");
      const plain = fromV2Token(token, email, { operation: "saveToken", strict: true });
      // First, as FileStore does: typescript-sdk-2.1 does not wait for its saves.
      token.setUserMail(email);
      let stored;
      try {
        stored = await this.#native.saveToken(plain);
      } catch (error) {
        throw sdkError("saveToken", error);
      }
      token.setId(stored.id);
      if (this.#managed) watch(token, this.#aheadMs);
    }

    /** Deletes the stored token getToken would find for `token`'s user mail; nothing when there is none. */
    async deleteToken(token) {
      if (!(token instanceof OAuthToken)) return;
      const email = text("deleteToken", "user mail", token.getUserMail()) || undefined;
      if (email === undefined) throw noEmail("deleteToken");
      try {
        const found = await this.#native.findToken({ user_name: email });
        if (found && sameGrant(token, found)) await this.#native.deleteToken(found.id);
      } catch (error) {
        throw sdkError("deleteToken", error);
      }
    }

    /** Every stored token, as an array of new OAuthToken objects. */
    async getTokens() {
      try {
        return (await this.#native.getTokens()).map(toV2Token);
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

  describeStore(SecretsManagerStore);
  return { SecretsManagerStore, RefreshError };
}

exports.defineV2Store = defineV2Store;
