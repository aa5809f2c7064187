// Builds the native addon with cargo and puts it where lib/native.cjs loads
// it: `zoho-token-store.<platform>.node` in the package folder.
//
//     node scripts/build.mjs            # dev profile (the tests' build)
//     node scripts/build.mjs --release  # what `npm install` builds
//
// Plain `cargo build` for the host, as napi's CLI would run it but without
// its explicit `--target`, so that the artifacts land in the same
// `target/debug` (or CARGO_TARGET_DIR) tree as the Rust peer of the tests
// and the root crate's own builds, and their dependencies build once.

import { spawn } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { binaryName, packageDir } from "../lib/native.cjs";

/**
 * Builds the crate of `manifest` in `profile` ("dev" or "release") and copies
 * its library to the package folder; resolves to the installed file.
 */
export function buildAddon({ manifest = join(packageDir, "Cargo.toml"), profile = "dev" } = {}) {
  const args = ["build", "--lib", "--manifest-path", manifest, "--message-format=json-render-diagnostics"];
  if (profile === "release") args.push("--release");
  return new Promise((resolve, reject) => {
    const cargo = spawn("cargo", args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    cargo.stdout.on("data", (chunk) => {
      output += chunk;
    });
    cargo.on("error", reject);
    cargo.on("close", (status) => {
      if (status !== 0) return reject(new Error(`cargo build failed (exit ${status})`));
      let library = null;
      for (const line of output.split("\n")) {
        if (!line.startsWith("{")) continue;
        const message = JSON.parse(line);
        if (message.reason === "compiler-artifact" && message.target?.name === "zoho_token_store_node") {
          library = message.filenames.find((file) => /\.(so|dylib|dll)$/.test(file)) ?? library;
        }
      }
      if (!library) return reject(new Error("cargo built no zoho_token_store_node library"));
      const target = join(packageDir, binaryName());
      copyFileSync(library, target);
      resolve(target);
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const profile = process.argv.includes("--release") ? "release" : "dev";
  buildAddon({ profile }).then(
    (file) => process.stderr.write(`zoho-token-store: built ${file} (${profile})\n`),
    (error) => {
      process.stderr.write(`zoho-token-store: ${error.message}\n`);
      process.exit(1);
    },
  );
}
