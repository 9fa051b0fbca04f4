#!/usr/bin/env bash
# Re-vendors the OCSF 1.3.0 and ECS 8.11 definitions from pinned registry packages and
# rebuilds the JSON Schemas generated from them.
#
#   schemas/vendor/fetch.sh            # download, verify, extract, generate, check examples
#   SKIP_CHECK=1 schemas/vendor/fetch.sh   # without the check (no jsonschema venv)
#
# 1. downloads the exact package versions below with pip (PyPI) and npm (npm registry) into
#    a temporary directory and stops unless each archive has the sha256 written here;
# 2. extracts the needed files into schemas/vendor/ocsf-1.3.0/ and schemas/vendor/ecs-8.11/
#    (the Detection Finding class and the objects it reaches; the ECS field list without its
#    long descriptions and index settings) and the licence texts;
# 3. runs generate.py build: schemas/ocsf-1.3.0-detection-finding.schema.json and
#    schemas/ecs-8.11-event.schema.json;
# 4. runs generate.py check in a throwaway venv under /tmp (jsonschema from PyPI): the valid
#    examples in examples/ pass and the invalid ones fail.
#
# Needs bash, python3 >= 3.11 with pip and venv, npm with node, sha256sum and tar. The output
# is deterministic: running it twice leaves the tree unchanged. See SOURCE.md.
set -euo pipefail

OCSF_PKG=ocsf-json-schema
OCSF_PKG_VERSION=1.2.0
OCSF_FILE=ocsf_json_schema-1.2.0-py3-none-any.whl
OCSF_SHA256=64d819042d20c3c04bc0d024c7c47c41006ebbe0209ce768ba6efa1240106708
OCSF_VERSION=1.3.0

ECS_PKG=@elastic/ecs
ECS_PKG_VERSION=8.11.5
ECS_FILE=elastic-ecs-8.11.5.tgz
ECS_SHA256=bcf8c1595a010a1c06a3388afcb877668b616d5ed0c27ba086944a4344649fd3
ECS_VERSION=8.11.0
ECS_SERIES=8.11

# For the check only.
CHECK_REQUIREMENTS=(
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==0.30.0
  attrs==26.1.0
  typing_extensions==4.15.0
)

cd "$(dirname "$0")"
VENDOR=$(pwd)

for tool in python3 npm node sha256sum tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch.sh: $tool not found" >&2; exit 2; }
done
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "fetch.sh: python3 >= 3.11 needed" >&2; exit 2; }

WORK=$(mktemp -d /tmp/trailhound-schemas.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

verify() { # file sha256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "fetch.sh: $(basename "$1"): sha256 $got, want $2" >&2
    exit 1
  fi
  echo "==> $(basename "$1"): sha256 ok"
}

echo "==> $OCSF_PKG $OCSF_PKG_VERSION (PyPI)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --no-cache-dir \
  --dest "$WORK" "$OCSF_PKG==$OCSF_PKG_VERSION"
verify "$WORK/$OCSF_FILE" "$OCSF_SHA256"

echo "==> $ECS_PKG $ECS_PKG_VERSION (npm)"
(cd "$WORK" && npm pack --silent "$ECS_PKG@$ECS_PKG_VERSION" >/dev/null)
verify "$WORK/$ECS_FILE" "$ECS_SHA256"

# OCSF: the schema export bundled in the wheel (a zip) and the OCSF licence beside it.
python3 - "$WORK/$OCSF_FILE" "$WORK/ocsf" "$OCSF_VERSION" <<'EOF'
import sys, zipfile
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in (f"ocsf_json_schema/ocsf/{version}.json", "ocsf_json_schema/ocsf/LICENSE.txt"):
        z.extract(name, out)
EOF
OCSF_SRC="$WORK/ocsf/ocsf_json_schema/ocsf"

# ECS: the field list is compiled into a JavaScript module; node turns it back into JSON.
tar -xzf "$WORK/$ECS_FILE" -C "$WORK" \
  package/generated/ecs_flat.js package/generated/index.ts package/LICENSE package/NOTICE.txt
got_version=$(sed -n "s/^export const EcsVersion = '\(.*\)' as const;$/\1/p" "$WORK/package/generated/index.ts")
if [ "$got_version" != "$ECS_VERSION" ]; then
  echo "fetch.sh: $ECS_PKG $ECS_PKG_VERSION carries ECS $got_version, want $ECS_VERSION" >&2
  exit 1
fi
node -e 'process.stdout.write(JSON.stringify(require(process.argv[1]).EcsFlat))' \
  "$WORK/package/generated/ecs_flat.js" >"$WORK/ecs_flat.json"

rm -rf "$VENDOR/ocsf-$OCSF_VERSION" "$VENDOR/ecs-$ECS_SERIES"
python3 "$VENDOR/generate.py" extract-ocsf "$OCSF_SRC/$OCSF_VERSION.json"
python3 "$VENDOR/generate.py" extract-ecs "$WORK/ecs_flat.json" "$ECS_VERSION"
cp "$OCSF_SRC/LICENSE.txt" "$VENDOR/LICENSE-OCSF"
cp "$WORK/package/LICENSE" "$VENDOR/LICENSE-ECS"
cp "$WORK/package/NOTICE.txt" "$VENDOR/ecs-$ECS_SERIES/NOTICE.txt"

echo "==> generate.py build"
python3 "$VENDOR/generate.py" build

if [ "${SKIP_CHECK:-}" = 1 ]; then
  echo "==> check skipped (SKIP_CHECK=1)"
  exit 0
fi
VENV=/tmp/trailhound-schemas-venv
stamp=$(printf '%s\n' "${CHECK_REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  echo "==> creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CHECK_REQUIREMENTS[@]}"
  echo "$stamp" >"$VENV/.stamp"
fi
echo "==> generate.py check"
"$VENV/bin/python" "$VENDOR/generate.py" check
