#!/bin/sh
# jwt_bench.sh - JWT verifications per CPU-second of one thread, for each
# algorithm: agentgate's verifier (full: parse, key lookup, signature,
# claims) side by side with the bare OpenSSL signature check and with
# libjwt 1.10's jwt_decode.  Usage: bench/jwt_bench.sh [SECONDS-PER-CELL]
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$top/pooler" agentgate-token >/dev/null
exec "$top/pooler/agentgate-token" bench --seconds "${1:-2}"
