#!/usr/bin/env bash
# The Node package's tests, from a fresh checkout: needs Rust (cargo) and
# Node.js 20+ (npm), and LocalStack (Secrets Manager) answering at
# AWS_ENDPOINT_URL (default http://127.0.0.1:4566; the tests fail, never
# skip, without it).
#
# 1. npm ci: the committed package-lock.json (napi's CLI, the Zoho SDK, the
#    AWS SDK for JavaScript used to inspect and clean up LocalStack), without
#    lifecycle scripts: the package's own install step builds nothing in a
#    checkout, and step 2 builds what the tests load.
# 2. The addon in the dev profile (scripts/build.mjs: cargo build), and the Rust peer the tests
#    drive; both honour CARGO_TARGET_DIR.
# 3. node --test with the TAP reporter: its summary ends in "# pass N" and
#    "# fail N".
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TERM_QUIET=true
npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
node scripts/build.mjs
cargo build --quiet --manifest-path ../Cargo.toml --example rust_peer
node --test --test-reporter=tap --test-concurrency=1 test/*.test.js
