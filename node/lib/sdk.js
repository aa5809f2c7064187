// Finds the application's copy of the Zoho Node SDK (a peer dependency).
//
// The SDK checks `store instanceof TokenStore` against its own class, so the
// store must extend the TokenStore of the very copy the application imports.
// An installed package (inside a node_modules folder) resolves it as any
// module does. A linked checkout (`npm install <checkout>/node`) would resolve
// the checkout's own development copy instead, so there the application's copy
// is looked up first: from the main script's folder, then the working folder.

import { realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import { pathToFileURL } from "node:url";

import { packageDir } from "./native.js";

/** The SDK's npm name. */
export const SDK_NAME = "@zohocrm/nodejs-sdk-8.0";

/** The folders the SDK is resolved from, first match wins. */
function searchFolders() {
  const own = packageDir;
  if (own.split(sep).includes("node_modules")) return [own];
  const folders = [];
  if (process.argv[1]) {
    try {
      folders.push(dirname(realpathSync(process.argv[1])));
    } catch {
      // the main script may be gone or virtual (a REPL, `node -e`)
    }
  }
  folders.push(process.cwd(), own);
  return folders;
}

/** The SDK's entry file, or a clear error naming where it was looked for. */
function resolveSdk() {
  const folders = searchFolders();
  for (const folder of folders) {
    try {
      return createRequire(join(folder, "noop.js")).resolve(SDK_NAME);
    } catch {
      // not installed there: try the next folder
    }
  }
  throw new Error(
    `zoho-token-store needs the Zoho SDK: npm install ${SDK_NAME} (looked from ${folders.join(", ")})`,
  );
}

/** The SDK's exports (`TokenStore`, `OAuthToken`, `UserSignature`, ...). */
export const sdk = await import(pathToFileURL(resolveSdk()).href);
