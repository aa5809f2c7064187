// npm's `install` step: builds the native addon with cargo unless a prebuilt
// one for this platform is already in the package (the Lambda build ships
// one). Needs Rust (cargo) on the machine that installs.
//
// - Installed from a checkout (`npm install <checkout>/node`, a link), the
//   crate is the checkout's: node/Cargo.toml, the core crate in `..`.
// - Installed as a copy (`npm install --install-links <checkout>/node`, a
//   packed tarball), the `prepare` step put both crates under vendor/.
// - In the checkout itself (`npm install`/`npm ci` in node/) nothing is
//   built: `npm run build:debug` or `npm run build` does it.
//
// ZOHO_TOKEN_STORE_SKIP_BUILD=1 skips the build.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

import { binaryName, packageDir } from "../lib/native.cjs";
import { buildAddon } from "./build.mjs";

const say = (message) => process.stderr.write(`zoho-token-store: ${message}\n`);
const fail = (message) => {
  say(message);
  process.exit(1);
};

/** Whether `folder` holds the core crate's manifest. */
function isCoreCrate(folder) {
  const manifest = join(folder, "Cargo.toml");
  return existsSync(manifest) && /^name = "zoho-token-store"$/m.test(readFileSync(manifest, "utf8"));
}

/** The node crate's manifest to build, and whether its target folder is ours to remove. */
function crateToBuild() {
  if (isCoreCrate(resolve(packageDir, "..")) && existsSync(join(packageDir, "Cargo.toml"))) {
    return { manifest: join(packageDir, "Cargo.toml"), scratch: false };
  }
  const vendored = join(packageDir, "vendor", "node", "Cargo.toml");
  if (isCoreCrate(join(packageDir, "vendor")) && existsSync(vendored)) {
    return { manifest: vendored, scratch: !process.env.CARGO_TARGET_DIR };
  }
  return null;
}

const target = join(packageDir, binaryName());
if (existsSync(target)) process.exit(0);
if (process.env.ZOHO_TOKEN_STORE_SKIP_BUILD) process.exit(0);
const root = process.env.npm_config_local_prefix;
if (root && resolve(root) === packageDir) {
  say("development checkout: build the addon with `npm run build:debug` (or `npm run build`)");
  process.exit(0);
}

const crate = crateToBuild();
if (!crate) fail(`no prebuilt addon ${binaryName()} and no Rust sources to build one`);
if (spawnSync("cargo", ["--version"], { stdio: "ignore" }).status !== 0) {
  fail(`no prebuilt addon ${binaryName()}: building it needs Rust (cargo on the PATH, https://rustup.rs)`);
}

say(`building the native addon (cargo build --release, ${crate.manifest}); this takes a few minutes`);
try {
  const file = await buildAddon({ manifest: crate.manifest, profile: "release" });
  say(`installed ${file}`);
} catch (error) {
  fail(error.message);
} finally {
  if (crate.scratch) rmSync(join(packageDir, "vendor", "node", "target"), { recursive: true, force: true });
}
