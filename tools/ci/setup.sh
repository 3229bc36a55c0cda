#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian machine: Kamailio, sipp, promtool and
# Node.js (Debian packages), grpc-js (npm, tools/grpcjs), a Redis on 127.0.0.1:6379
# (started when none answers), and the pinned Go tools (buf and grpcurl from tools/go.mod;
# buf, the protoc plugins, staticcheck and deadcode from tools/generate/go.mod). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n=== %s\n' "$*"; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

need=()
command -v kamailio >/dev/null && command -v kamcmd >/dev/null || need+=(kamailio)
command -v sipp >/dev/null || need+=(sip-tester)
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus) # promtool: make check-deploy
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm) # the grpc-js Requester
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
kamailio -v | head -1
promtool --version 2>&1 | head -1

step "redis on 127.0.0.1:6379"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  $sudo mkdir -p /var/lib/redis /var/log/redis
  $sudo redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 100); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

step "grpc-js Requester (tools/grpcjs, from its package-lock.json)"
# @grpc/grpc-js is the gRPC server of Routr's own Requester: the Requester client's
# interoperability test (internal/upstream/grpcjs_test.go) runs against it.
npm ci --prefix tools/grpcjs --ignore-scripts --no-audit --no-fund --loglevel=error
node --version

step "pinned Go tools"
# buf and grpcurl, the clients the e2e tests build from tools/go.mod.
go build -o /dev/null github.com/bufbuild/buf/cmd/buf github.com/fullstorydev/grpcurl/cmd/grpcurl
# The generators and linters of tools/generate/go.mod (outside go.work, hence GOWORK=off),
# built into the go command's cache where the Makefile's GENTOOL finds them.
for t in $(GOWORK=off go -C tools/generate tool | grep /); do
  GOWORK=off go -C tools/generate tool -n "$t" >/dev/null
done
echo ok
