#!/usr/bin/env bash
# Installs what the test suite needs and runs it. This is the README's test command.
#
# Needs the Rust toolchain and python3 (3.11+, with venv and pip access to PyPI) for the
# Sigma reference oracle. Every test runs on the data vendored under tests/. Services (a
# moto S3/SQS/CloudWatch emulator, a Kafka broker) will be installed and started here,
# on 127.0.0.1 only, when the tests that need them exist.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 2
fi

export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The independent Sigma reference (pySigma + DuckDB, from PyPI, in target/oracle-venv):
# its answers on the real samples are what tests/sigmahq.rs compares trailhound with.
./scripts/oracle.sh
export TRAILHOUND_ORACLE=required

cargo test --locked "$@"
