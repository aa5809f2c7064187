// Loads the native addon: `zoho-token-store.<platform>.node` in the package
// folder, built by `npm install` (scripts/install.mjs), `npm run build`, or
// shipped prebuilt (the Lambda build).
"use strict";

const { join, dirname } = require("node:path");

/** The package folder. */
const packageDir = dirname(__dirname);

/** Whether this Linux runs musl rather than glibc (Alpine). */
function isMusl() {
  const report = process.report?.getReport?.();
  return !report?.header?.glibcVersionRuntime;
}

/** napi-rs's platform tag for this machine (`linux-x64-gnu`, `darwin-arm64`, ...). */
function platformTag() {
  const { platform, arch } = process;
  if (platform === "linux") return `linux-${arch}-${isMusl() ? "musl" : "gnu"}`;
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The addon's file name for this machine. */
function binaryName() {
  return `zoho-token-store.${platformTag()}.node`;
}

/** The addon's exports (`NativeStore`, ...). */
function loadNative() {
  const file = join(packageDir, binaryName());
  try {
    return require(file);
  } catch (error) {
    throw new Error(
      `zoho-token-store: cannot load its native addon ${file} (${error.code ?? error.message}). ` +
        "It is built when the package is installed, which needs Rust (cargo): " +
        "run `npm rebuild zoho-token-store`, or in a checkout `npm run build`.",
    );
  }
}

exports.packageDir = packageDir;
exports.platformTag = platformTag;
exports.binaryName = binaryName;
exports.loadNative = loadNative;
