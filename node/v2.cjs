// zoho-token-store/v2: the store for the Zoho CRM JavaScript SDKs of the v2
// interface (`getToken(user, token)`): @zohocrm/nodejs-sdk-2.0,
// @zohocrm/typescript-sdk-2.1 and -2.0 (lib/store_v2.cjs). The CommonJS
// entry; v2.js, the ES module entry, re-exports it. Its stores share their
// secrets with the main entry's, so a fleet moving from a v2 SDK to a newer
// one shares its tokens and refreshes once.
//
// SecretsManagerStore is made for the v2 SDK the application installed (lib/
// sdk.cjs says how it is found); its `sdk` option, or ZOHO_TOKEN_STORE_SDK,
// names one when there are several.
"use strict";

const { storeClasses } = require("./lib/classes.cjs");
const { loadNative } = require("./lib/native.cjs");
const { V2_SDKS, defaultV2Sdk, loadV2Sdk } = require("./lib/sdk.cjs");
const { TOKEN_STORE } = require("./lib/common.cjs");
const { defineV2Store } = require("./lib/store_v2.cjs");

const { NativeStore } = loadNative();
const { define } = storeClasses({ NativeStore, load: loadV2Sdk, defineClass: defineV2Store });

const { SecretsManagerStore, RefreshError } = define(defaultV2Sdk());

Object.defineProperty(exports, "__esModule", { value: true });
exports.SecretsManagerStore = SecretsManagerStore;
exports.RefreshError = RefreshError;
exports.TOKEN_STORE = TOKEN_STORE;
exports.SUPPORTED_SDKS = V2_SDKS;
exports.default = SecretsManagerStore;
