// npm's `prepare` step when the package is packed (`npm pack`, and
// `npm install --install-links <checkout>/node`, which packs the folder and
// installs the tarball): copies the core crate (the checkout's root) to
// vendor/ and this crate to vendor/node/, so that the copy can build the
// addon without the checkout (vendor/node/Cargo.toml finds the core in `..`,
// as node/Cargo.toml does in the checkout). A plain `npm install` in the
// checkout does nothing here.

import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

import { packageDir } from "../lib/native.cjs";

const packing = process.env.npm_package_resolved || ["pack", "publish"].includes(process.env.npm_command);
if (!packing) process.exit(0);

const core = resolve(packageDir, "..");
const manifest = join(core, "Cargo.toml");
if (!existsSync(manifest) || !/^name = "zoho-token-store"$/m.test(readFileSync(manifest, "utf8"))) {
  process.stderr.write(`zoho-token-store: no core crate at ${core}: cannot vendor it\n`);
  process.exit(1);
}
const vendor = join(packageDir, "vendor");
rmSync(vendor, { recursive: true, force: true });
mkdirSync(join(vendor, "node"), { recursive: true });
// The core's manifest names its benches, examples and tests: they come along
// so that cargo can read it (only the library is built).
for (const entry of ["Cargo.toml", "README.md", "src", "benches", "examples", "tests"]) {
  cpSync(join(core, entry), join(vendor, entry), { recursive: true });
}
for (const entry of ["Cargo.toml", "Cargo.lock", "build.rs", "src", "examples"]) {
  cpSync(join(packageDir, entry), join(vendor, "node", entry), { recursive: true });
}
