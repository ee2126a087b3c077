#!/usr/bin/env bash
# Build influxd 1.12.x (InfluxDB OSS 1.x: v1 /write + /query AND /api/v2/write) from the Go module proxy,
# once, into a cache outside the clone, and print the binary's path on stdout.
#
#   deploy/local/install-influxd.sh              build once (~15-20 min cold on 2 cores); later runs print the path
#   deploy/local/install-influxd.sh --background start that build detached and return at once (`make test`:
#                                                 the tests run meanwhile; `stack.sh up influxdb2` waits for it)
#   INFLUXD_VERSION=v1.12.4 deploy/local/...      another 1.x release (1.8 or later serves /api/v2/write)
#
# Debian ships InfluxDB 1.6, which has no /api/v2/write; the tests of the sink's v2 path need a newer
# server, and 1.12 is the newest line `go install` can build (2.x's go.mod has a replace directive).
# The binary lands in ${FLEET_CACHE_DIR:-~/.cache/fleetstream}/bin/influxd-<version>, so every clone
# and every `make clean` reuses it. Needs Go (PATH or /usr/local/go/bin), cargo and a C compiler:
# influxd links Flux's Rust library (libflux), which influxdata's pkg-config wrapper compiles with cargo.
# Two runs at once do not build twice (a lock in the cache directory).
set -euo pipefail

INFLUXD_VERSION="${INFLUXD_VERSION:-v1.12.4}"
PKG_CONFIG_VERSION="v0.2.14"   # influxdata/pkg-config: builds libflux for cgo
CACHE="${FLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetstream}"
BIN="$CACHE/bin/influxd-${INFLUXD_VERSION#v}"
MODULE="github.com/influxdata/influxdb"

say() { printf '[install-influxd] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

if [[ "${1:-}" == "--background" ]]; then
  # Build detached, at the lowest CPU priority, so that what runs meanwhile (the tests) keeps the cores;
  # whoever needs the binary runs this script again and waits on the build's lock.
  mkdir -p "$CACHE"
  nohup nice -n 19 setsid "$0" >"$CACHE/influxd-background.log" 2>&1 </dev/null &
  say "building influxd ${INFLUXD_VERSION#v} in the background (progress: $CACHE/influxd-background.log);" \
    "\`stack.sh up influxdb2\` waits for it"
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument $1 (usage: $0 [--background])"

GO="$(command -v go || true)"
[[ -n "$GO" || ! -x /usr/local/go/bin/go ]] || GO=/usr/local/go/bin/go
[[ -n "$GO" ]] || die "Go is needed to build influxd: install Go 1.24+ (https://go.dev/doc/install) or put it on PATH"
command -v cargo >/dev/null || die "cargo (Rust) is needed to build influxd's Flux library: install rustup (https://rustup.rs)"
command -v cc >/dev/null || command -v gcc >/dev/null || die "a C compiler (gcc) is needed for cgo"

mkdir -p "$CACHE/bin"
exec 9>"$CACHE/influxd-build.lock"
if ! flock -n 9; then
  say "another build of influxd is running; waiting for it (lock $CACHE/influxd-build.lock)"
  flock 9
fi
if [[ -x "$BIN" ]]; then  # built by the run we waited for
  echo "$BIN"
  exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fleet-influxd-build.XXXXXX")"
LOG="$CACHE/influxd-${INFLUXD_VERSION#v}-build.log"
trap 'kill "${build_pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# libflux pins Rust 1.72 (rust-toolchain.toml) and denies warnings in its own crates; a newer Rust adds
# lints that turn into errors. Build with the installed toolchain and cap lints at "warn" for every crate:
# RUSTFLAGS would miss the crates built for the host (libflux's build script uses flux-core), so a
# rustc wrapper adds --cap-lints where cargo did not.
cat >"$WORK/rustc-cap-lints" <<'EOF'
#!/usr/bin/env bash
for a in "$@"; do [[ "$a" == --cap-lints* ]] && exec "$@"; done
exec "$@" --cap-lints=warn
EOF
chmod +x "$WORK/rustc-cap-lints"
export RUSTC_WRAPPER="$WORK/rustc-cap-lints"
if command -v rustup >/dev/null && ! rustup toolchain list 2>/dev/null | grep -q '^1\.72'; then
  export RUSTUP_TOOLCHAIN="${FLEET_RUST_TOOLCHAIN:-stable}"
fi

say "building influxd ${INFLUXD_VERSION#v} from Go modules, first time only, ~15-20 min on 2 cores"
say "using $("$GO" version), $(cargo --version 2>/dev/null); log: $LOG"
start=$SECONDS
(
  set -e
  export GOBIN="$WORK/bin"
  echo "== go install github.com/influxdata/pkg-config@$PKG_CONFIG_VERSION"
  nice -n 10 "$GO" install "github.com/influxdata/pkg-config@$PKG_CONFIG_VERSION"
  export PKG_CONFIG="$GOBIN/pkg-config"
  echo "== go install $MODULE/cmd/influxd@$INFLUXD_VERSION"
  nice -n 10 "$GO" install -ldflags "-X main.version=${INFLUXD_VERSION#v} -X main.branch=${INFLUXD_VERSION}" \
    "$MODULE/cmd/influxd@$INFLUXD_VERSION"
) >"$LOG" 2>&1 &
build_pid=$!

# Progress every 30 s: elapsed time and what the build is doing (from the build's child processes).
phase() {
  local procs
  procs="$(ps -e -o pid=,ppid=,comm= | awk -v root="$build_pid" '
    { parent[$1] = $2; name[$1] = $3 }
    END { for (p in parent) { q = p; while (q in parent && q != root && q > 1) q = parent[q]; if (q == root) print name[p] } }')"
  if grep -qE "^(cargo|rustc|build-script)" <<<"$procs"; then
    echo "compiling Flux's Rust library (libflux) with cargo"
  elif grep -qE "^(compile|link|cgo|cc1|gcc|ld)" <<<"$procs"; then
    echo "compiling Go packages"
  else
    echo "downloading Go modules"
  fi
}
while kill -0 "$build_pid" 2>/dev/null; do
  for _ in $(seq 1 30); do kill -0 "$build_pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$build_pid" 2>/dev/null && say "still building ($(( (SECONDS - start) / 60 )) min): $(phase)"
done
if ! wait "$build_pid"; then
  build_pid=""
  grep -E "^error|error:|cannot|undefined" "$LOG" | head -n 20 >&2 || true
  tail -n 15 "$LOG" >&2
  die "building influxd $INFLUXD_VERSION failed after $(( (SECONDS - start) / 60 )) min; the whole log is $LOG"
fi
build_pid=""

"$WORK/bin/influxd" version >/dev/null 2>&1 || die "the built influxd does not run (log: $LOG)"
install -m 0755 "$WORK/bin/influxd" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
say "built $("$BIN" version) in $(( (SECONDS - start) / 60 )) min; cached at $BIN"
echo "$BIN"
