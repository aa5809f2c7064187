// What the tests run against. By default the checkout's package (../index.js)
// and its development copy of @zohocrm/nodejs-sdk-8.0. In the SDK matrix
// (tests/node-sdks), an application folder ZTS_TEST_APP where npm installed
// one Zoho SDK, ZTS_TEST_SDK, and this package, as a user's application
// would: both are loaded from there, the SDK the way the package loads it
// (require(), which gives ESM SDKs' one module instance too).

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The application folder of the SDK matrix; undefined for the checkout's own tests. */
export const APP = process.env.ZTS_TEST_APP || undefined;

/** The npm name of the Zoho SDK under test. */
export const SDK_NAME = process.env.ZTS_TEST_SDK || "@zohocrm/nodejs-sdk-8.0";

const requireFromApp = APP ? createRequire(join(APP, "package.json")) : createRequire(import.meta.url);

/** The Zoho SDK's exports (OAuthToken, InitializeBuilder, ...). */
export const sdk = requireFromApp(SDK_NAME);

/** The package's ES module exports (SecretsManagerStore, RefreshError, ...). */
export const pkg = APP
  ? await import(pathToFileURL(join(APP, "esm.mjs")).href) // `import "zoho-token-store"` in the app
  : await import("../index.js");

/** The package through require(): its CommonJS entry. */
export const requirePackage = () => (APP ? requireFromApp("zoho-token-store") : createRequire(import.meta.url)("../index.cjs"));
