// Finds the application's copy of a Zoho CRM JavaScript SDK (an optional
// peer dependency: the package installs none).
//
// Every Zoho SDK with the `findToken` TokenStore interface is supported:
// `@zohocrm/nodejs-sdk-8.0` and `-7.0` (ESM, whose `TokenStore` is a class
// that `InitializeBuilder.store()` checks with `instanceof`) and
// `@zohocrm/typescript-sdk-8.0`, `-7.0` and `-6.0` (CommonJS, whose
// `TokenStore` is a type only). The store must extend the TokenStore of the
// very copy the application imports, and answer that copy's OAuthToken and
// SDKException, so the SDK is looked up from the application's folders:
//
// 1. an installed package (inside a node_modules folder) resolves it as any
//    module does, from its own folder;
// 2. LAMBDA_TASK_ROOT, the function's folder: in a Lambda layer the package
//    is under /opt/nodejs/node_modules while the function brings its SDK;
// 3. the main script's folder, then the working folder (a linked checkout,
//    `npm install <checkout>/node`, whose own folder holds a development copy);
// 4. the package's own folder.
//
// The first folder where any supported SDK resolves decides; within it the
// order of SDKS. The `sdk` option, or the ZOHO_TOKEN_STORE_SDK environment
// variable, names one when an application has several.
"use strict";

const { existsSync, readFileSync, realpathSync } = require("node:fs");
const { createRequire } = require("node:module");
const { dirname, join, sep } = require("node:path");

const { packageDir } = require("./native.cjs");

/** The supported SDKs, in the order one is picked when several are installed. */
const SDKS = Object.freeze([
  "@zohocrm/nodejs-sdk-8.0",
  "@zohocrm/nodejs-sdk-7.0",
  "@zohocrm/typescript-sdk-8.0",
  "@zohocrm/typescript-sdk-7.0",
  "@zohocrm/typescript-sdk-6.0",
]);

/** The folders an SDK is resolved from, in order. */
function searchFolders() {
  const folders = [];
  const installed = packageDir.split(sep).includes("node_modules");
  if (installed) folders.push(packageDir);
  if (process.env.LAMBDA_TASK_ROOT) folders.push(process.env.LAMBDA_TASK_ROOT);
  if (process.argv[1]) {
    try {
      folders.push(dirname(realpathSync(process.argv[1])));
    } catch {
      // the main script may be gone or virtual (a REPL, `node -e`)
    }
  }
  folders.push(process.cwd());
  if (!installed) folders.push(packageDir);
  return [...new Set(folders)];
}

/** The entry file of `name` resolved from `folder`, or undefined. */
function resolveFrom(folder, name) {
  try {
    return createRequire(join(folder, "noop.js")).resolve(name);
  } catch {
    return undefined;
  }
}

/** The version in the package.json of the package `name` that holds `entry`. */
function versionOf(name, entry) {
  for (let folder = dirname(entry); folder !== dirname(folder); folder = dirname(folder)) {
    const manifest = join(folder, "package.json");
    if (!existsSync(manifest)) continue;
    try {
      const parsed = JSON.parse(readFileSync(manifest, "utf8"));
      if (parsed.name === name) return parsed.version;
    } catch {
      // an unreadable package.json: keep looking up
    }
  }
  return undefined;
}

/** Where an SDK was found: its name and entry file; undefined when none is. */
function locate(wanted) {
  if (wanted !== undefined && !SDKS.includes(wanted)) {
    throw new Error(
      `zoho-token-store: unsupported Zoho SDK ${JSON.stringify(wanted)}; supported: ${SDKS.join(", ")}`,
    );
  }
  const folders = searchFolders();
  for (const folder of folders) {
    for (const name of wanted === undefined ? SDKS : [wanted]) {
      const entry = resolveFrom(folder, name);
      if (entry) return { name, entry };
    }
  }
  return { folders };
}

const loaded = new Map();

/**
 * The SDK `wanted` (a name of SDKS; default the first found), as
 * `{ name, version, TokenStore, OAuthToken, UserSignature, SDKException,
 * Initializer, Utility }`, `TokenStore` being the class to extend (undefined
 * for the TypeScript SDKs, where it is a type only). Throws an Error naming
 * the folders looked in when none is installed.
 */
function loadSdk(wanted) {
  const found = locate(wanted);
  if (!found.entry) {
    const what = wanted ?? `one of ${SDKS.join(", ")}`;
    throw new Error(
      `zoho-token-store needs a Zoho CRM SDK: npm install ${wanted ?? SDKS[0]} (${what}; looked from ${found.folders.join(", ")})`,
    );
  }
  const cached = loaded.get(found.entry);
  if (cached) return cached;
  let exports;
  try {
    // The ESM SDKs load through require() too (Node 20.19+, 22.12+), so that
    // this package has no top-level await and CommonJS apps can require it.
    exports = require(found.entry);
  } catch (error) {
    if (error?.code === "ERR_REQUIRE_ESM") {
      throw new Error(
        `zoho-token-store: ${found.name} is an ES module, which this Node.js (${process.version}) cannot require(); use Node.js 20.19+ or 22.12+`,
      );
    }
    throw error;
  }
  const sdk = Object.freeze({
    name: found.name,
    version: versionOf(found.name, found.entry),
    TokenStore: typeof exports.TokenStore?.TokenStore === "function" ? exports.TokenStore.TokenStore : undefined,
    OAuthToken: exports.OAuthToken,
    UserSignature: exports.UserSignature,
    SDKException: exports.SDKException,
    Initializer: exports.Initializer,
    Utility: exports.Utility,
  });
  for (const part of ["OAuthToken", "UserSignature", "SDKException", "Initializer", "Utility"]) {
    if (typeof sdk[part] !== "function") {
      throw new Error(`zoho-token-store: ${found.name} (${found.entry}) exports no ${part}`);
    }
  }
  loaded.set(found.entry, sdk);
  return sdk;
}

/** The SDK ZOHO_TOKEN_STORE_SDK names, or the first found; undefined when none is installed. */
function defaultSdk() {
  const wanted = process.env.ZOHO_TOKEN_STORE_SDK || undefined;
  if (wanted === undefined && !locate(undefined).entry) return undefined;
  return loadSdk(wanted);
}

exports.SDKS = SDKS;
exports.loadSdk = loadSdk;
exports.defaultSdk = defaultSdk;
