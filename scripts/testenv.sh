#!/usr/bin/env bash
# The test environment: local registries on 127.0.0.1 and the busybox base image.
#
#   scripts/testenv.sh up DIR [WATCH_PID]   start everything under DIR, print KEY=VALUE lines
#                                           (also written to DIR/env); with WATCH_PID the
#                                           registries stop by themselves when that process ends
#   scripts/testenv.sh down DIR             stop what `up` started
#
# Registries (Debian's docker-registry, the reference Distribution registry):
#   TROWEL_TEST_REGISTRY       plain HTTP, anonymous; has busybox:{1.35,latest} (OCI), busybox:docker
#                              (schema2), busybox:arm64 (a real arm64 image) and busybox:multi (an
#                              index of both)
#   TROWEL_TEST_AUTH_REGISTRY  plain HTTP, htpasswd basic auth (TROWEL_TEST_AUTH_USER / _PASSWORD)
#   TROWEL_TEST_TLS_REGISTRY   HTTPS with a self-signed CA (TROWEL_TEST_CA), addressed by the name
#                              registry.trowel.test (added to /etc/hosts) so it is not loopback-insecure;
#                              registry.trowel.local (also added) reaches every registry by a private name
#   TROWEL_TEST_MTLS_REGISTRY  the same HTTPS, plus mutual TLS: it refuses a client without a certificate
#                              signed by its client CA (`tls.clientcas`); TROWEL_TEST_CLIENT_CERT and
#                              _KEY are one (EC P-256), TROWEL_TEST_MTLS_CERT_DIR holds the CA and that
#                              pair as skopeo's --cert-dir wants them (ca.crt, client.cert, client.key)
#   The auth registry also takes the user oauth2accesstoken with the same password (what Google's
#   registries take an access token as), and /etc/hosts maps an ECR name and an Artifact Registry
#   name to 127.0.0.1, for tests/registry_cloud.rs (the names of cloud registries have the logins)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: testenv.sh up|down DIR [WATCH_PID]}
dir=${2:?usage: testenv.sh up|down DIR [WATCH_PID]}
watch=${3:-}
tls_name=registry.trowel.test
ecr_name=123456789012.dkr.ecr.us-east-1.amazonaws.com
google_name=trowel-test-docker.pkg.dev

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_registry() { # name port extra-yaml
  local name=$1 port=$2 extra=$3
  mkdir -p "$dir/$name/data"
  cat > "$dir/$name/config.yml" <<Y
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/$name/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: trowel-test-secret
$extra
Y
  if [ -n "$watch" ]; then
    # A watchdog so a crashed or killed test run never leaves registries behind.
    ( docker-registry serve "$dir/$name/config.yml" >"$dir/$name/log" 2>&1 & rpid=$!
      echo $rpid > "$dir/$name/pid"
      while kill -0 "$watch" 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 1; done
      kill $rpid 2>/dev/null || true ) >/dev/null 2>&1 &
  else
    docker-registry serve "$dir/$name/config.yml" >"$dir/$name/log" 2>&1 &
    echo $! > "$dir/$name/pid"
  fi
}

wait_up() { # url [curl args...]
  local url=$1; shift
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true)
    case "$code" in 200|401) return 0;; esac
    sleep 0.1
  done
  echo "registry at $url did not start" >&2
  return 1
}

case "$cmd" in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Plain registry.
  p1=$(free_port)
  start_registry plain "$p1" ""
  # Basic-auth registry.
  p2=$(free_port)
  user=trowel-user
  pass="s3cret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  htpasswd -Bbc "$dir/htpasswd" "$user" "$pass" >/dev/null 2>&1
  htpasswd -Bb "$dir/htpasswd" oauth2accesstoken "$pass" >/dev/null 2>&1
  start_registry auth "$p2" "auth:
  htpasswd:
    realm: trowel-test
    path: $dir/htpasswd"
  # TLS registry with its own CA.
  p3=$(free_port)
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=trowel test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$tls_name" \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$tls_name" > "$dir/tls.ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/tls.ext" -out "$dir/tls.pem" >/dev/null 2>&1
  start_registry tls "$p3" "  tls:
    certificate: $dir/tls.pem
    key: $dir/tls.key"
  # Mutual-TLS registry: the TLS registry's server certificate, and a client CA of its own (EC
  # keys: generated in milliseconds, unlike RSA).
  p4=$(free_port)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=trowel test client CA" -keyout "$dir/client-ca.key" -out "$dir/client-ca.pem" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=trowel test client" \
    -keyout "$dir/client.key" -out "$dir/client.csr" >/dev/null 2>&1
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > "$dir/client.ext"
  openssl x509 -req -in "$dir/client.csr" -CA "$dir/client-ca.pem" -CAkey "$dir/client-ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/client.ext" -out "$dir/client.pem" >/dev/null 2>&1
  mkdir -p "$dir/mtls-certs"
  cp "$dir/ca.pem" "$dir/mtls-certs/ca.crt"
  cp "$dir/client.pem" "$dir/mtls-certs/client.cert"
  cp "$dir/client.key" "$dir/mtls-certs/client.key"
  start_registry mtls "$p4" "  tls:
    certificate: $dir/tls.pem
    key: $dir/tls.key
    clientcas:
      - $dir/client-ca.pem"
  # registry.trowel.test names the TLS registries (not loopback, so verified); registry.trowel.local
  # is a private name, which kaniko's client tries over plain HTTP too; the ECR and Artifact
  # Registry names are for the cloud logins (tests/registry_cloud.rs).
  for name in "$tls_name" registry.trowel.local "$ecr_name" "$google_name"; do
    if ! grep -q " $name\$" /etc/hosts 2>/dev/null; then
      echo "127.0.0.1 $name" >> /etc/hosts 2>/dev/null || echo "warning: cannot add $name to /etc/hosts" >&2
    fi
  done
  wait_up "http://127.0.0.1:$p1/v2/"
  wait_up "http://127.0.0.1:$p2/v2/"
  wait_up "https://127.0.0.1:$p3/v2/" --cacert "$dir/ca.pem"
  wait_up "https://127.0.0.1:$p4/v2/" --cacert "$dir/ca.pem" --cert "$dir/client.pem" --key "$dir/client.key"
  "$here/make-base-image.sh" "127.0.0.1:$p1" busybox >/dev/null
  cat > "$dir/env" <<E
TROWEL_TEST_REGISTRY=127.0.0.1:$p1
TROWEL_TEST_AUTH_REGISTRY=127.0.0.1:$p2
TROWEL_TEST_AUTH_USER=$user
TROWEL_TEST_AUTH_PASSWORD=$pass
TROWEL_TEST_TLS_REGISTRY=$tls_name:$p3
TROWEL_TEST_CA=$dir/ca.pem
TROWEL_TEST_MTLS_REGISTRY=$tls_name:$p4
TROWEL_TEST_CLIENT_CERT=$dir/client.pem
TROWEL_TEST_CLIENT_KEY=$dir/client.key
TROWEL_TEST_MTLS_CERT_DIR=$dir/mtls-certs
TROWEL_TEST_DIR=$dir
E
  cat "$dir/env"
  ;;
down)
  for name in plain auth tls mtls; do
    [ -f "$dir/$name/pid" ] && kill "$(cat "$dir/$name/pid")" 2>/dev/null || true
  done
  ;;
*) echo "unknown command $cmd" >&2; exit 2;;
esac
