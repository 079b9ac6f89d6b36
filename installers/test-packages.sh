#!/usr/bin/env bash
# Builds the Debian packages from a build directory configured with -DCMAKE_INSTALL_PREFIX=/usr,
# checks their metadata and contents, lints them, installs them on this machine, runs the
# installed binaries, verifies the systemd unit, and removes them again. Needs root.
#
#   bash installers/test-packages.sh BUILD_DIR
set -euo pipefail
build="$(cd "${1:?usage: test-packages.sh BUILD_DIR}" && pwd)"
out="$build/packages"
say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'test-packages: FAIL: %s\n' "$*" >&2; exit 1; }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ "$prefix" = /usr ] || fail "$build was configured with CMAKE_INSTALL_PREFIX=$prefix; packages need /usr"
[ "$(id -u)" -eq 0 ] || fail "installing packages needs root"

say "cpack"
rm -rf "$out"
(cd "$build" && cpack -G DEB -B "$out" >/dev/null)
worker=$(ls "$out"/dipaco-worker_*.deb)
studio=$(ls "$out"/dipaco-studio_*.deb 2>/dev/null || true)
cuda=$(ls "$out"/dipaco-cuda_*.deb 2>/dev/null || true)
ls -l "$out"/*.deb

say "metadata and contents"
# (Listings go through files: grep -q closing a pipe early would fail the pipeline.)
expect_file() {  # deb path
  dpkg-deb -c "$1" | awk '{print $6}' > "$out/contents.txt"
  grep -qx "\.$2" "$out/contents.txt" || fail "$(basename "$1") lacks $2"
}
dpkg-deb -I "$worker" > "$out/worker-info.txt"
cat "$out/worker-info.txt"
grep -q "Package: dipaco-worker" "$out/worker-info.txt" || fail "worker package name"
grep -Eq "Depends:.*libopenblas0" "$out/worker-info.txt" ||
  fail "worker Depends lacks OpenBLAS (shlibdeps did not run?)"
grep -q "libsentencepiece0" "$out/worker-info.txt" || fail "worker Depends lacks libsentencepiece0"
for f in /usr/bin/dipaco /usr/bin/dipaco-worker /etc/dipaco/worker.toml \
         /usr/lib/systemd/system/dipaco-worker.service \
         /usr/lib/x86_64-linux-gnu/dipaco/libdipaco_sentencepiece.so; do
  expect_file "$worker" "$f"
done
dpkg-deb -e "$worker" "$out/worker-control"
grep -qx /etc/dipaco/worker.toml "$out/worker-control/conffiles" || fail "worker.toml is not a conffile"
# The maintainer scripts as shipped, checked as /bin/sh runs them (shellcheck when installed).
for script in postinst prerm postrm; do
  [ -f "$out/worker-control/$script" ] || fail "the worker package has no $script"
  sh -n "$out/worker-control/$script" || fail "$script: sh -n"
done
if command -v shellcheck >/dev/null; then
  shellcheck -s sh -S warning "$out/worker-control/postinst" "$out/worker-control/prerm" \
    "$out/worker-control/postrm" || fail "shellcheck of the maintainer scripts"
else
  echo "shellcheck is not installed: the maintainer scripts got sh -n only"
fi
# An upgrade restarts a running worker (the fleet must not keep the old binary); a removal
# stops and disables it before its binary goes away.
grep -q 'try-restart dipaco-worker.service' "$out/worker-control/postinst" ||
  fail "postinst does not restart a running worker on upgrade"
grep -q 'stop dipaco-worker.service' "$out/worker-control/prerm" || fail "prerm does not stop the worker on remove"
grep -q 'disable dipaco-worker.service' "$out/worker-control/prerm" || fail "prerm does not disable the worker on remove"
if [ -n "$studio" ]; then
  dpkg-deb -I "$studio" > "$out/studio-info.txt"
  grep -q "Depends:.*dipaco-worker (= " "$out/studio-info.txt" || fail "studio must depend on worker"
  for f in /usr/bin/dipaco-studio /usr/share/applications/dipaco-studio.desktop \
           /usr/share/icons/hicolor/scalable/apps/dipaco-studio.svg \
           /usr/share/metainfo/org.dipaco.studio.metainfo.xml; do
    expect_file "$studio" "$f"
  done
fi
[ -z "$cuda" ] || expect_file "$cuda" /usr/lib/x86_64-linux-gnu/dipaco/libdipaco_cuda.so

say "lintian (errors fail the test)"
# Private plugin libraries without SONAME and a local (non-Debian) maintainer address are ours
# by design; everything lintian calls an error otherwise fails.
lintian --fail-on error --suppress-tags \
  shared-library-lacks-version,sharedobject-in-library-directory-missing-soname,bogus-mail-host \
  $worker $studio $cuda || fail "lintian errors"

say "install"
apt-get install -y -qq "$worker" $studio $cuda >/dev/null
# Only the packages this build made: apt-get fails on a name it has never seen.
installed="dipaco-worker${studio:+ dipaco-studio}${cuda:+ dipaco-cuda}"
trap 'apt-get purge -y -qq $installed >/dev/null 2>&1 || true' EXIT
getent passwd dipaco >/dev/null || fail "postinst did not create the dipaco user"
[ "$(stat -c %U /var/lib/dipaco)" = dipaco ] || fail "/var/lib/dipaco is not owned by dipaco"

say "run the installed binaries"
[[ "$(/usr/bin/dipaco --version)" == "dipaco "* ]] || fail "dipaco --version"
[[ "$(/usr/bin/dipaco-worker --version)" == "dipaco-worker "* ]] || fail "dipaco-worker --version"
# The packaged config has no coordinator address or token yet: --check fails as a config error
# (exit 2, which the unit does not restart); filled in, it passes.
check_rc=0
/usr/bin/dipaco-worker --check > "$out/check.txt" || check_rc=$?
cat "$out/check.txt"
grep -q "config: /etc/dipaco/worker.toml" "$out/check.txt" || fail "--check did not read /etc/dipaco/worker.toml"
[ "$check_rc" -eq 2 ] || fail "--check of the packaged config exited $check_rc, not 2 (no address)"
grep -q "error: no \[coordinator\] address" "$out/check.txt" || fail "--check did not name the missing address"
configured=$(mktemp -d)
echo worker-token > "$configured/worker.token"
sed -e 's|^address = ""$|address = "127.0.0.1:7443"|' \
  -e "s|^token_file = \"\"\$|token_file = \"$configured/worker.token\"|" \
  /etc/dipaco/worker.toml > "$configured/worker.toml"
/usr/bin/dipaco-worker --check --config "$configured/worker.toml" | tee "$out/check.txt"
grep -q "check: ok" "$out/check.txt" || fail "dipaco-worker --check of the configured config"
rm -rf "$configured"
# The installed SentencePiece shim is found next to the installed binary.
work=$(mktemp -d)
for i in $(seq 1 200); do echo "the jury said the city vote was new and the court was grand $i."; done > "$work/c.txt"
/usr/bin/dipaco data tokenizer --corpus "$work/c.txt" --out "$work/t.model" --vocab-size 300 \
  --model-type bpe >/dev/null 2>&1 || fail "installed dipaco cannot train a tokenizer (shim?)"
rm -rf "$work"

say "systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/dipaco-worker.service || fail "unit does not verify"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' /usr/lib/systemd/system/dipaco-worker.service ||
  fail "unit lacks ExecReload (systemctl reload sends the worker SIGHUP)"

say "remove"
apt-get purge -y -qq $installed >/dev/null
trap - EXIT
[ ! -e /usr/bin/dipaco-worker ] || fail "dipaco-worker still installed after purge"
[ ! -e /var/lib/dipaco ] || fail "/var/lib/dipaco left after purge"
echo "packages: ok"
