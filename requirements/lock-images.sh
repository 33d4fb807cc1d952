#!/usr/bin/env bash
# Rewrites requirements/images.lock: every package the images install, pinned, with hashes.
# Inputs: pyproject.toml (fedjourney's runtime dependencies and its `tanat` extra),
# requirements/images.in and requirements/images.overrides. Needs Python 3.11+ and PyPI;
# uses `uv` from PATH, or installs it into a throwaway venv.
set -euo pipefail

req=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$req")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$root/pyproject.toml" >"$tmp/fedjourney.in" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("# fedjourney's runtime dependencies (pyproject.toml)")
for dep in project["dependencies"] + project["optional-dependencies"]["tanat"]:
    print(dep)
PY

uv=$(command -v uv || true)
if [[ -z $uv ]]; then
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q uv
    uv=$tmp/venv/bin/uv
fi

# --universal: one lock for x86_64 and aarch64 hosts (platform-specific packages get markers).
# The index is PyPI whatever the local pip configuration says.
(
    cd "$root"
    "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        --index-url https://pypi.org/simple --no-config \
        --override requirements/images.overrides \
        --custom-compile-command requirements/lock-images.sh \
        --output-file requirements/images.lock \
        "$tmp/fedjourney.in" requirements/images.in
)
# The temporary input's path would change on every run; name it after what it holds.
sed -i "s|$tmp/fedjourney.in|pyproject.toml|g" "$req/images.lock"
echo "lock-images: wrote requirements/images.lock ($(grep -c '^[a-z0-9]' "$req/images.lock") packages)"
