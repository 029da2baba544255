#!/usr/bin/env bash
# Collects the Debian packages lgd builds against (everything but LibTorch) as .deb files in
# one folder, for a machine that cannot reach a package registry: copy the folder there and
# run scripts/build_offline.sh. Run it on a Debian 12 (bookworm) machine with apt; needs no
# root. The packages' own dependencies are followed, except those every machine with a C++
# compiler has (the C library, libstdc++, libgcc, their kernel and crypto dependencies).
#
#   scripts/bundle_deps.sh                 into deps/ (ignored by git)
#   scripts/bundle_deps.sh DIR             into DIR
#   LGD_BUNDLE_OPENCV=1 scripts/bundle_deps.sh
#                                          also OpenCV (about 90 packages, most of them codecs);
#                                          without it lgd reads JPEG and PNG, not the other formats
#   LGD_BUNDLE_DATA=1 scripts/bundle_deps.sh
#                                          also Fashion-MNIST (dataset-fashion-mnist, 31 MB): the
#                                          demo and the tests that run it (demo.tiny, compare.tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-deps}

roots=(
  libyaml-cpp-dev libspdlog-dev libcli11-dev libsentencepiece-dev
  libturbojpeg0-dev libpng-dev libpcre2-dev zlib1g-dev libgtest-dev nlohmann-json3-dev
)
# Headers alone, without their packages' dependencies: c10d's Gloo process group, whose
# code a PyTorch pip install carries inside libtorch_cpu.so but whose headers it does not.
headers_only=(libgloo-dev)
[ "${LGD_BUNDLE_OPENCV:-0}" = 1 ] && roots+=(libopencv-dev)
[ "${LGD_BUNDLE_DATA:-0}" = 1 ] && roots+=(dataset-fashion-mnist)

# On every machine that can compile C++: not bundled.
base='^(libc6|libc6-dev|libc-dev-bin|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc.*|rpcsvc-proto|libcom-err2|libgssapi-krb5-2|libk5crypto3|libkeyutils1|libkrb5-3|libkrb5support0|libssl3|debconf|dpkg|perl-base|tar|libselinux1|catch2)$'

command -v apt-cache >/dev/null && command -v apt-get >/dev/null ||
  { echo "bundle_deps.sh: needs apt-cache and apt-get (a Debian 12 machine)" >&2; exit 1; }

mapfile -t packages < <(
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${roots[@]}" |
    grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$base")
packages+=("${headers_only[@]}")
for p in "${roots[@]}" "${headers_only[@]}"; do
  printf '%s\n' "${packages[@]}" | grep -qx "$p" ||
    { echo "bundle_deps.sh: apt knows no package $p (is this Debian 12 with its main archive?)" >&2; exit 1; }
done

mkdir -p "$dest"
echo "bundle_deps.sh: ${#packages[@]} packages into $dest/"
# (apt, as root, warns that it downloads unsandboxed into a folder _apt cannot write: harmless)
(cd "$dest" && apt-get download "${packages[@]}" 2>&1 >/dev/null | grep -v 'unsandboxed' >&2 || true)
for p in "${packages[@]}"; do
  compgen -G "$dest/${p}_*.deb" >/dev/null || { echo "bundle_deps.sh: $p was not downloaded" >&2; exit 1; }
done
{
  echo "# lgd build dependencies, collected by scripts/bundle_deps.sh on $(date -u +%Y-%m-%d)"
  echo "# from $(. /etc/os-release && echo "$PRETTY_NAME"); unpack with scripts/build_offline.sh"
  (cd "$dest" && sha256sum -- *.deb)
} > "$dest/MANIFEST"
du -sh "$dest" | awk '{print "bundle_deps.sh: " $1 " in " $2 "; MANIFEST lists each file and its sha256"}'
