// zoho-token-store: a Zoho CRM JavaScript SDK TokenStore on AWS Secrets
// Manager, through the zoho-token-store Rust crate (a napi-rs addon). The
// CommonJS entry; index.js, the ES module entry, re-exports it, so that an
// application that both requires and imports the package gets one class.
//
// SecretsManagerStore is made for the Zoho SDK the application installed
// (lib/sdk.cjs says how it is found; nodejs-sdk-8.0/7.0, typescript-sdk-
// 8.0/7.0/6.0); its `sdk` option, or ZOHO_TOKEN_STORE_SDK, names one when
// there are several. The exported RefreshError, fromSdkToken and toSdkToken
// are that default SDK's.
"use strict";

const { storeClasses } = require("./lib/classes.cjs");
const { loadNative } = require("./lib/native.cjs");
const { SDKS, defaultSdk, loadSdk } = require("./lib/sdk.cjs");
const { TOKEN_STORE, defineStore } = require("./lib/store.cjs");

const { NativeStore } = loadNative();
const { define } = storeClasses({ NativeStore, load: loadSdk, defineClass: defineStore });

const { SecretsManagerStore, RefreshError, fromSdkToken, toSdkToken } = define(defaultSdk());

Object.defineProperty(exports, "__esModule", { value: true });
exports.SecretsManagerStore = SecretsManagerStore;
exports.RefreshError = RefreshError;
exports.fromSdkToken = fromSdkToken;
exports.toSdkToken = toSdkToken;
exports.TOKEN_STORE = TOKEN_STORE;
exports.SUPPORTED_SDKS = SDKS;
exports.default = SecretsManagerStore;
