#!/usr/bin/env bash
# Builds examples/lambda.rs the way a user's Lambda crate builds it: a crate
# of its own that depends on this one (default features) and on the example's
# own dependencies, with none of this repository's dev-dependencies (the AWS
# caching crate of the benchmarks turns the AWS SDK's legacy TLS back on).
# Prints the stripped size and the TLS and crypto crates linked.
#
# Usage: benches/lambda_binary.sh [OUT]   (OUT: where to copy the binary;
#        default target/lambda-user/lambda). Env: CARGO_TARGET_DIR.
set -euo pipefail

REPO_ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
CRATE="$TARGET/lambda-user"
OUT="${1:-$CRATE/lambda}"

mkdir -p "$CRATE/src"
cp "$REPO_ROOT/examples/lambda.rs" "$CRATE/src/main.rs"
# The same dependency versions as the repository's lock.
cp "$REPO_ROOT/Cargo.lock" "$CRATE/Cargo.lock"
cat >"$CRATE/Cargo.toml" <<EOF
[package]
name = "lambda-user"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
zoho-token-store = { path = "$REPO_ROOT" }
lambda_runtime = "1.5.0"
reqwest = { version = "0.12", default-features = false, features = ["rustls-tls-webpki-roots-no-provider", "json"] }
rustls = { version = "0.23", default-features = false, features = ["aws_lc_rs", "std", "tls12"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

[profile.release]
strip = true

[workspace]
EOF

cargo build --release --manifest-path "$CRATE/Cargo.toml" --target-dir "$TARGET" >&2
cp "$TARGET/release/lambda-user" "$OUT"
echo "stripped size: $(stat -c %s "$OUT") bytes ($OUT)"
tree="$(cargo tree --manifest-path "$CRATE/Cargo.toml" -e normal,build --prefix none 2>/dev/null |
  awk '{print $1, $2}' | sort -u)"
for crate in ring rustls aws-lc-rs aws-lc-sys; do
  versions="$(printf '%s\n' "$tree" | awk -v c="$crate" '$1 == c {print $2}' | tr '\n' ' ')"
  echo "$crate: ${versions:-not linked}"
done
