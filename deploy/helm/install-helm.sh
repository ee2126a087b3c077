#!/usr/bin/env bash
# Install helm into .local/bin/helm by building it from the Go module proxy (no release download).
#
#   deploy/helm/install-helm.sh            build once; later runs print the cached version and exit
#   HELM_VERSION=v3.19.0 deploy/helm/...   another 3.x release
#
# It sets the same link-time variables as helm's own Makefile: the version `helm version` prints, and
# the Kubernetes version (from helm's client-go requirement) that `helm template` and `helm lint`
# assume for .Capabilities and API deprecation checks. Go is taken from PATH or /usr/local/go/bin.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$ROOT/.local/bin"
HELM="$BIN_DIR/helm"
MODULE="helm.sh/helm/v3"

say() { printf '[install-helm] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [[ -x "$HELM" ]]; then
  have="$("$HELM" version --template '{{.Version}}' 2>/dev/null || true)"
  if [[ "$have" == "$HELM_VERSION" ]]; then
    say "helm $have already installed at ${HELM#"$ROOT"/}"
    exit 0
  fi
  say "found helm ${have:-of unknown version} at ${HELM#"$ROOT"/}; replacing it with $HELM_VERSION"
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi
[[ -n "$GO" ]] || die "Go is needed to build helm: install Go 1.24+ (https://go.dev/doc/install) or put it on PATH"
say "using $("$GO" version)"

say "downloading $MODULE@$HELM_VERSION and its dependencies from $("$GO" env GOPROXY)"
info="$("$GO" mod download -json "$MODULE@$HELM_VERSION")" \
  || die "could not download $MODULE@$HELM_VERSION from the Go module proxy"
gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
[[ -f "$gomod" ]] || die "no go.mod for $MODULE@$HELM_VERSION in: $info"

# helm's Makefile: Kubernetes 1.N for client-go v0.N.
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
[[ "$client_go" =~ ^v0\.([0-9]+)\. ]] || die "cannot read the client-go version from $gomod"
k8s_minor="${BASH_REMATCH[1]}"
say "helm $HELM_VERSION is built against Kubernetes 1.$k8s_minor (client-go $client_go)"

ldflags="-w -s"
ldflags+=" -X $MODULE/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X $MODULE/$pkg.k8sVersionMajor=1 -X $MODULE/$pkg.k8sVersionMinor=$k8s_minor"
done

mkdir -p "$BIN_DIR"
say "compiling helm (cold: a few minutes on 2 cores; the Go build cache makes a rebuild fast)"
start=$SECONDS
GOBIN="$BIN_DIR" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
  "$GO" install -ldflags "$ldflags" "$MODULE/cmd/helm@$HELM_VERSION" \
  || die "go install $MODULE/cmd/helm@$HELM_VERSION failed (see the compiler output above)"

have="$("$HELM" version --template '{{.Version}}')" || die "the built $HELM does not run"
[[ "$have" == "$HELM_VERSION" ]] || die "built helm reports version $have, expected $HELM_VERSION"
say "installed helm $have at ${HELM#"$ROOT"/} in $((SECONDS - start))s"
