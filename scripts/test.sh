#!/usr/bin/env bash
# Installs what the test suite needs and runs it. This is the README's test command.
#
# Needs the Rust toolchain and python3 (3.11+, with venv and pip access to PyPI) for the
# Sigma reference oracle and the AWS emulator. Every test runs on the data vendored under
# tests/. The AWS source tests start their own moto servers (S3, SQS, CloudWatch Logs,
# IAM) on free ports of 127.0.0.1, from the venv that scripts/moto.sh installs; the Kafka
# tests start their own brokers (Tansu, see scripts/kafka-local) the same way.
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

# The AWS emulator (moto server, from PyPI, in target/moto-venv), smoke-checked.
./scripts/moto.sh
export TRAILHOUND_MOTO=required

# The Kafka-protocol broker for tests/kafka.rs: Tansu, built once from crates.io into
# ~/.cache/kafka-local (about 16 minutes on 2 cores the first time, then cached). The
# tests start their own brokers on free ports of 127.0.0.1 through scripts/kafka-local.
./scripts/kafka-local fetch >/dev/null
export TRAILHOUND_KAFKA=required

cargo test --locked "$@"
