// Loads the native addon: `zoho-token-store.<platform>.node` in the package
// folder, built by `npm install` (scripts/install.mjs), `npm run build`, or
// shipped prebuilt (the Lambda build).

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package folder. */
export const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** Whether this Linux runs musl rather than glibc (Alpine). */
function isMusl() {
  const report = process.report?.getReport?.();
  return !report?.header?.glibcVersionRuntime;
}

/** napi-rs's platform tag for this machine (`linux-x64-gnu`, `darwin-arm64`, ...). */
export function platformTag() {
  const { platform, arch } = process;
  if (platform === "linux") return `linux-${arch}-${isMusl() ? "musl" : "gnu"}`;
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The addon's file name for this machine. */
export function binaryName() {
  return `zoho-token-store.${platformTag()}.node`;
}

/** The addon's exports (`NativeStore`, ...). */
export function loadNative() {
  const file = join(packageDir, binaryName());
  try {
    return createRequire(import.meta.url)(file);
  } catch (error) {
    throw new Error(
      `zoho-token-store: cannot load its native addon ${file} (${error.code ?? error.message}). ` +
        "It is built when the package is installed, which needs Rust (cargo): " +
        "run `npm rebuild zoho-token-store`, or in a checkout `npm run build`.",
    );
  }
}
