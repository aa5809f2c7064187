// The Lambda build: the addon for linux x64 with glibc 2.17 or later (every
// Node.js Lambda runtime), cross-linked by zig through cargo-zigbuild (no
// Docker), and a Lambda layer zip holding the package with it prebuilt.
//
//     python3 -m venv .venv-zig && .venv-zig/bin/pip install ziglang==0.17.1 cargo-zigbuild==0.24.1
//     PATH="$PWD/.venv-zig/bin:$PATH" npm run build:lambda   # -> lambda/zoho-token-store-layer.zip
//
// (cargo-zigbuild finds zig through `python3 -m ziglang`; `cargo install
// cargo-zigbuild` works as well.)
//
// The layer puts the package at nodejs/node_modules/zoho-token-store (where
// Node.js Lambda runtimes resolve modules); the function ships the Zoho SDK
// itself, or another layer does. Honours CARGO_TARGET_DIR.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

import { packageDir } from "../lib/native.cjs";

const TARGET = "x86_64-unknown-linux-gnu";
const GLIBC = "2.17";

function run(command, args, options = {}) {
  const done = spawnSync(command, args, { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", ...options });
  if (done.status !== 0) {
    process.stderr.write(`build-lambda: ${command} ${args.join(" ")} failed (exit ${done.status})\n`);
    process.exit(1);
  }
  return done.stdout;
}

const output = run("cargo", [
  "zigbuild",
  "--release",
  "--lib",
  "--manifest-path",
  join(packageDir, "Cargo.toml"),
  "--target",
  `${TARGET}.${GLIBC}`,
  "--message-format=json-render-diagnostics",
]);
let library = null;
for (const line of output.split("\n")) {
  if (!line.startsWith("{")) continue;
  const message = JSON.parse(line);
  if (message.reason === "compiler-artifact" && message.target?.name === "zoho_token_store_node") {
    library = message.filenames.find((file) => file.endsWith(".so")) ?? library;
  }
}
if (!library) {
  process.stderr.write("build-lambda: cargo built no zoho_token_store_node library\n");
  process.exit(1);
}

// Nothing above glibc 2.17 may be referenced (Lambda's oldest Node runtime image).
const symbols = run("objdump", ["-T", library]);
const versions = [...symbols.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
const newest = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a), [0, 0]);
if (newest[0] > 2 || (newest[0] === 2 && newest[1] > 17)) {
  process.stderr.write(`build-lambda: the addon needs GLIBC_${newest.join(".")}, more than ${GLIBC}\n`);
  process.exit(1);
}

const out = join(packageDir, "lambda");
const layer = join(out, "layer");
const pkg = join(layer, "nodejs", "node_modules", "zoho-token-store");
rmSync(out, { recursive: true, force: true });
mkdirSync(pkg, { recursive: true });
// Both entries (the main one and zoho-token-store/v2), as package.json's exports name them.
const ENTRIES = ["index.js", "index.cjs", "index.d.ts", "index.d.cts", "v2.js", "v2.cjs", "v2.d.ts", "v2.d.cts"];
for (const entry of ["package.json", ...ENTRIES, "lib", "README.md"]) {
  if (existsSync(join(packageDir, entry))) cpSync(join(packageDir, entry), join(pkg, entry), { recursive: true });
}
mkdirSync(join(pkg, "scripts"));
for (const script of ["install.mjs", "build.mjs"]) {
  cpSync(join(packageDir, "scripts", script), join(pkg, "scripts", script));
}
cpSync(library, join(pkg, "zoho-token-store.linux-x64-gnu.node"));
const zip = join(out, "zoho-token-store-layer.zip");
run("zip", ["-q", "-r", "-9", zip, "nodejs"], { cwd: layer });
const bytes = statSync(zip).size;
const addon = statSync(join(pkg, "zoho-token-store.linux-x64-gnu.node")).size;
console.log(
  JSON.stringify({ zip, zip_bytes: bytes, addon_bytes: addon, glibc_needed: newest.join(".") }, null, 2),
);
