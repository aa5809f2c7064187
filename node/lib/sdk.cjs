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
//
// The SDKs of the v2 interface (`getToken(user, token)`: nodejs-sdk-2.0,
// typescript-sdk-2.1 and -2.0), for the package's v2 entry, are found the
// same way (V2_SDKS, loadV2Sdk); their parts are loaded by path.
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

/** The folder and version of the package `name` that holds its file `entry`. */
function packageOf(name, entry) {
  for (let folder = dirname(entry); folder !== dirname(folder); folder = dirname(folder)) {
    const manifest = join(folder, "package.json");
    if (!existsSync(manifest)) continue;
    try {
      const parsed = JSON.parse(readFileSync(manifest, "utf8"));
      if (parsed.name === name) return { folder, version: parsed.version };
    } catch {
      // an unreadable package.json: keep looking up
    }
  }
  return { folder: dirname(entry), version: undefined };
}

/**
 * Where an SDK of `names` (the list of one family) was found: its name and
 * entry file; `{ folders }`, the folders looked in, when none is.
 */
function locate(wanted, names = SDKS) {
  if (wanted !== undefined && !names.includes(wanted)) {
    throw new Error(
      `zoho-token-store: unsupported Zoho SDK ${JSON.stringify(wanted)}; supported: ${names.join(", ")}`,
    );
  }
  const folders = searchFolders();
  for (const folder of folders) {
    for (const name of wanted === undefined ? names : [wanted]) {
      const entry = resolveFrom(folder, name);
      if (entry) return { name, entry };
    }
  }
  return { folders };
}

/** The located SDK of `names`, or an Error naming what to install and where it was looked for. */
function find(wanted, names) {
  const found = locate(wanted, names);
  if (!found.entry) {
    const what = wanted ?? `one of ${names.join(", ")}`;
    throw new Error(
      `zoho-token-store needs a Zoho CRM SDK: npm install ${wanted ?? names[0]} (${what}; looked from ${found.folders.join(", ")})`,
    );
  }
  return found;
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
  const found = find(wanted, SDKS);
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
    version: packageOf(found.name, found.entry).version,
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

/**
 * The SDK ZOHO_TOKEN_STORE_SDK names, or the first found (also when it names
 * a v2 SDK, which is the v2 entry's); undefined when none is installed.
 */
function defaultSdk() {
  const named = process.env.ZOHO_TOKEN_STORE_SDK || undefined;
  const wanted = V2_SDKS.includes(named) ? undefined : named;
  if (wanted === undefined && !locate(undefined).entry) return undefined;
  return loadSdk(wanted);
}

/**
 * The SDKs of the v2 interface (`getToken(user, token)`), in the order one is
 * picked when several are installed, with the folder of their modules inside
 * the package (they have no index exporting the token classes, or only a
 * TypeScript one).
 */
const V2_SDKS = Object.freeze(["@zohocrm/nodejs-sdk-2.0", "@zohocrm/typescript-sdk-2.1", "@zohocrm/typescript-sdk-2.0"]);
const V2_ROOTS = { "@zohocrm/typescript-sdk-2.1": "dist" };
/** The module of each part of a v2 SDK, and the name it exports the part as. */
const V2_MODULES = {
  TokenStore: "models/authenticator/store/token_store",
  OAuthToken: "models/authenticator/oauth_token",
  UserSignature: "routes/user_signature",
  SDKException: "core/com/zoho/crm/api/exception/sdk_exception",
  Initializer: "routes/initializer",
};

/**
 * The v2 SDK `wanted` (a name of V2_SDKS; default the first found), as
 * `{ name, version, TokenStore, OAuthToken, UserSignature, SDKException,
 * Initializer }`, `TokenStore` being the class to extend (undefined for the
 * TypeScript SDKs, where it is an interface). Throws an Error naming the
 * folders looked in when none is installed.
 */
function loadV2Sdk(wanted) {
  const found = find(wanted, V2_SDKS);
  const cached = loaded.get(found.entry);
  if (cached) return cached;
  const { folder, version } = packageOf(found.name, found.entry);
  const parts = {};
  for (const [part, path] of Object.entries(V2_MODULES)) {
    const file = join(folder, V2_ROOTS[found.name] ?? "", path);
    let exported;
    try {
      exported = require(file)[part];
    } catch (error) {
      throw new Error(`zoho-token-store: ${found.name} ${version ?? ""} has no module ${file} (${error.message})`);
    }
    parts[part] = typeof exported === "function" ? exported : undefined;
    if (part !== "TokenStore" && parts[part] === undefined) {
      throw new Error(`zoho-token-store: ${found.name} (${file}) exports no ${part}`);
    }
  }
  const sdk = Object.freeze({ name: found.name, version, ...parts });
  loaded.set(found.entry, sdk);
  return sdk;
}

/** The v2 SDK ZOHO_TOKEN_STORE_SDK names (when it names one), or the first found; undefined when none is. */
function defaultV2Sdk() {
  const named = process.env.ZOHO_TOKEN_STORE_SDK || undefined;
  const wanted = V2_SDKS.includes(named) ? named : undefined;
  if (wanted === undefined && !locate(undefined, V2_SDKS).entry) return undefined;
  return loadV2Sdk(wanted);
}

exports.SDKS = SDKS;
exports.V2_SDKS = V2_SDKS;
exports.loadV2Sdk = loadV2Sdk;
exports.defaultV2Sdk = defaultV2Sdk;
exports.loadSdk = loadSdk;
exports.defaultSdk = defaultSdk;
