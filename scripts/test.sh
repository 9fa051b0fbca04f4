#!/usr/bin/env bash
# Installs what the test suite needs and runs it. This is the README's test command.
#
# Today the suite needs only the Rust toolchain: every test runs on the data vendored
# under tests/data/. Services (a moto S3/SQS/CloudWatch emulator, a Kafka broker) will be
# installed and started here, on 127.0.0.1 only, when the tests that need them exist.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 2
fi

export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --locked "$@"
