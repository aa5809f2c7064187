// What the v2 tests run against: a v2 Zoho SDK (ZTS_TEST_SDK, default
// @zohocrm/nodejs-sdk-2.0) and the package's v2 entry, both from the
// application folder ZTS_TEST_APP where npm installed them (tests/node-sdks
// makes one per SDK; a v2 SDK is no dependency of the checkout). The SDK's
// parts are loaded by path, as the package loads them: these SDKs have no
// index of them (typescript-sdk-2.1's are under dist/).

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The application folder; the v2 tests need one. */
export const APP = process.env.ZTS_TEST_APP;
if (!APP) throw new Error("the v2 tests run in an application with a v2 Zoho SDK: set ZTS_TEST_APP (tests/node-sdks does)");

/** The npm name of the v2 Zoho SDK under test. */
export const SDK_NAME = process.env.ZTS_TEST_SDK || "@zohocrm/nodejs-sdk-2.0";

const requireFromApp = createRequire(join(APP, "package.json"));
const ROOT = join(requireFromApp.resolve(`${SDK_NAME}/package.json`), "..", SDK_NAME.endsWith("-2.1") ? "dist" : "");
const part = (path, name) => requireFromApp(join(ROOT, path))[name];

/** The SDK's parts the tests use. */
export const sdk = {
  Environment: part("routes/dc/environment", "Environment"),
  FileStore: part("models/authenticator/store/file_store", "FileStore"),
  InitializeBuilder: part("routes/initialize_builder", "InitializeBuilder"),
  Initializer: part("routes/initializer", "Initializer"),
  Levels: part("routes/logger/logger", "Levels"),
  LogBuilder: part("routes/logger/log_builder", "LogBuilder"),
  OAuthToken: part("models/authenticator/oauth_token", "OAuthToken"),
  ParameterMap: part("routes/parameter_map", "ParameterMap"),
  SDKException: part("core/com/zoho/crm/api/exception/sdk_exception", "SDKException"),
  TokenStore: part("models/authenticator/store/token_store", "TokenStore"),
  UserSignature: part("routes/user_signature", "UserSignature"),
  Users: requireFromApp(join(ROOT, "core/com/zoho/crm/api/users/users_operations")),
};

/** The package's v2 entry through `import "zoho-token-store/v2"` in the application. */
export const pkg = await import(pathToFileURL(join(APP, "esm-v2.mjs")).href);

/** The package's v2 entry through require(). */
export const requirePackage = () => requireFromApp("zoho-token-store/v2");
