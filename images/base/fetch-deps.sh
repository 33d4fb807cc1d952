#!/bin/sh
# Fills /out, the build context of images/base/Dockerfile, with everything its build installs,
# so that the build itself needs no network. scripts/build-images runs this in a throwaway
# container of the base image (so the wheels fit its Python and architecture), with network,
# with the host's CA bundle mounted read-only when the host has one (TLS may be intercepted by
# a proxy the image does not trust). Nothing of this container ends up in an image.
#
# In:  /in/images.lock, TORCH_INDEX_URL (default PyPI), PIP_CERT (optional),
#      OUT_UID/OUT_GID (owner to give the files).
# Out: /out/wheels/*.whl; /out/wheels/requirements.txt (hash-checked) and unhashed.txt
#      (installed without hashes: see below); /out/debs/ (tini, when the base lacks it).
set -eu
pypi=https://pypi.org/simple
index=${TORCH_INDEX_URL:-$pypi}
out=/out
cd /  # pip prints paths relative to the working directory: keep them absolute
mkdir -p "$out/wheels" "$out/debs"

# tini, for bases without it (the public python image): Debian's package, whose tini-static
# the build copies. The local Debian base has it already.
if command -v tini >/dev/null; then
    rm -f "$out"/debs/*.deb
elif ! ls "$out"/debs/tini_*.deb >/dev/null 2>&1; then
    # Downloads as root into the bind mount, which apt's _apt user may not be able to write.
    set -- -o APT::Sandbox::User=root
    if [ -n "${PIP_CERT:-}" ]; then set -- "$@" -o "Acquire::https::CAInfo=$PIP_CERT"; fi
    apt-get "$@" -qq update
    (cd "$out/debs" && apt-get "$@" -qq download tini)
    rm -rf /var/lib/apt/lists/*
fi

# Torch from PyPI: the lock as it is. From another index (CPU builds): the lock without the
# torch family (torch, torchvision and the CUDA packages only torch needs), and the two
# packages at the lock's versions from that index, without hashes.
python3 - "$index" "$pypi" <<'PY'
import re, sys
index, pypi = (u.rstrip("/") for u in sys.argv[1:3])
text = open("/in/images.lock").read()
torch_family = re.compile(r"(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)$")
keep, torch = [], []
for block in re.split(r"\n(?=[a-z0-9])", text):
    m = re.match(r"([a-z0-9][a-z0-9._-]*)==([^ ;\\\n]+)", block)
    if index != pypi and m and torch_family.match(m.group(1)):
        if m.group(1) in ("torch", "torchvision"):
            torch.append(f"{m.group(1)}=={m.group(2)}")
        continue
    keep.append(block)
open("/out/wheels/requirements.txt", "w").write("\n".join(keep).rstrip("\n") + "\n")
open("/out/wheels/unhashed.txt", "w").write("".join(t + "\n" for t in torch))
PY

log=$(mktemp)
dl() {
    python3 -m pip download --disable-pip-version-check --no-cache-dir --no-deps \
        --dest "$out/wheels" "$@" >>"$log" 2>&1 \
        || { tail -n 30 "$log" >&2; echo "fetch-deps: pip download failed" >&2; exit 1; }
}
dl --index-url "$pypi" --require-hashes -r "$out/wheels/requirements.txt"
if [ -s "$out/wheels/unhashed.txt" ]; then
    dl --index-url "$index" -r "$out/wheels/unhashed.txt"
fi

# Keep only the wheels this fetch asked for: the build context is sent to the engine whole.
grep -oE "(Saved|File was already downloaded) $out/wheels/[^ ]+\.(whl|tar\.gz|zip)" "$log" | sed 's|.* ||' | sort -u >"$log.keep"
if [ -s "$log.keep" ]; then
    for w in "$out"/wheels/*.whl "$out"/wheels/*.tar.gz "$out"/wheels/*.zip; do
        [ -f "$w" ] || continue
        grep -qxF "$w" "$log.keep" || rm -f "$w"
    done
fi

# A package published only as source (validators 0.20.0, which fedbiomed pins) is built into a
# wheel here, where there is network for its build tools. The wheel's hash is not the one in
# the lock (that of the source, checked on download), so it moves to unhashed.txt.
for sdist in "$out"/wheels/*.tar.gz "$out"/wheels/*.zip; do
    [ -f "$sdist" ] || continue
    python3 -m pip wheel --disable-pip-version-check --no-cache-dir --no-deps \
        --wheel-dir "$out/wheels" "$sdist" >>"$log" 2>&1 \
        || { tail -n 30 "$log" >&2; echo "fetch-deps: building a wheel of $sdist failed" >&2; exit 1; }
    rm -f "$sdist"
    python3 - "$(basename "$sdist")" <<'PY'
import re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
name = norm(re.sub(r"\.(tar\.gz|zip)$", "", sys.argv[1]).rsplit("-", 1)[0])
path = "/out/wheels/requirements.txt"
keep, moved = [], []
for block in re.split(r"\n(?=[a-z0-9])", open(path).read()):
    m = re.match(r"([a-z0-9][a-z0-9._-]*)==([^ ;\\\n]+)", block)
    (moved if m and norm(m.group(1)) == name else keep).append(block)
open(path, "w").write("\n".join(keep).rstrip("\n") + "\n")
with open("/out/wheels/unhashed.txt", "a") as f:
    f.writelines(re.match(r"[^ ;\\\n]+", b).group(0) + "\n" for b in moved)
PY
done
echo "fetch-deps: $(find "$out/wheels" -name "*.whl" | wc -l) wheels, $(du -sh "$out/wheels" | cut -f1)"
rm -f "$log" "$log.keep"
chown -R "${OUT_UID:-0}:${OUT_GID:-0}" "$out"
