#!/usr/bin/env bash
# Prints, one per line, the distribution packages that provide the shared libraries the
# binaries and plugins under STAGING_DIR load, so that the runtime image installs exactly those
# (the -dev packages of the build stage stay behind). NVIDIA's libraries (CUDA runtime, cuBLAS,
# cuDNN, NCCL) are left out: the CUDA runtime base image has them, pinned to its CUDA version.
#
#   bash installers/docker/runtime-packages.sh /staging > /staging/runtime-packages.txt
set -euo pipefail
staging="${1:?usage: runtime-packages.sh STAGING_DIR}"

# Which package owns a library file; ldd may print /lib paths that dpkg knows under /usr/lib
# (merged /usr) or a symlink that update-alternatives manages (OpenBLAS).
owner() {
  local candidate
  for candidate in "$(realpath "$1")" "$1" "/usr$1" "${1#/usr}"; do
    if dpkg-query -S "$candidate" 2>/dev/null | grep -v '^diversion' | head -n 1 | cut -d: -f1; then
      return 0
    fi
  done
  echo "runtime-packages: no package owns $1" >&2
  return 1
}

objects=()
while IFS= read -r -d '' file; do  # ELF files only: ldd fails on scripts and data
  [ "$(head -c 4 "$file" | od -An -c | tr -d ' ')" = '177ELF' ] && objects+=("$file")
done < <(find "$staging" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
[ "${#objects[@]}" -gt 0 ] || { echo "runtime-packages: nothing under $staging" >&2; exit 1; }
missing=$(ldd "${objects[@]}" 2>/dev/null | grep 'not found' | sort -u || true)
if [ -n "$missing" ]; then
  echo "runtime-packages: unresolved libraries:" >&2
  echo "$missing" >&2
  exit 1
fi
ldd "${objects[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  while read -r library; do
    case "$(realpath "$library")" in /usr/local/cuda*) continue ;; esac
    owner "$library"
  done | grep -Ev '^(cuda-|libcublas|libcudnn|libnccl|libnvjitlink|libnvrtc|libcufft|libcurand|libcusolver|libcusparse|libnpp)' |
  sort -u
