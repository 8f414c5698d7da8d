#!/usr/bin/env bash
# Python peers for tests and benchmarks, in venvs keyed by version under
# ${CEREBRO_CACHE:-$HOME/.cache/cerebro}; a second run is a no-op.
#   llama-cpp  llama-cpp-python[server]: an OpenAI-compatible server for the
#              openai provider's tests, and the llama.cpp side of bench-models
#              (compiles llama.cpp once: 5 min 20 s measured on 2 idle cores)
#   mcp        the MCP Python SDK: a third-party client for `cerebro mcp`
#              and `/mcp` (~40 s)
#   kmock      kmock: a stateful Kubernetes API emulator over HTTP/JSON for
#              the Kubernetes tools' live tests (tools/tests/kubernetes.rs)
#   ministack  ministack with cbor2: an AWS emulator (EC2, ASG, RDS,
#              CloudWatch over Smithy RPC v2 CBOR, Logs, ...) for the AWS
#              tools' live tests (tools/tests/aws.rs); ~30 s
#   st         sentence-transformers: the reference side of bench-models
#              (pulls torch with its CUDA wheels: ~6 GB, ~15 min, once)
# Prints the venv's python path last.
set -euo pipefail
which=${1:?usage: python-peers.sh llama-cpp|mcp|kmock|ministack|st}
cache=${CEREBRO_CACHE:-$HOME/.cache/cerebro}
LLAMA_CPP_VERSION=0.3.36
ST_VERSION=6.2.0
MCP_VERSION=2.3.0
KMOCK_VERSION=0.8
MINISTACK_VERSION=1.5.33
CBOR2_VERSION=5.7.1
case "$which" in
  # "-noamx": built without Intel AMX (see below); the name changed so
  # venvs built with it are rebuilt.
  llama-cpp) venv="$cache/py/llama-cpp-python-$LLAMA_CPP_VERSION-noamx"
             spec=("llama-cpp-python[server]==$LLAMA_CPP_VERSION") ;;
  mcp)       venv="$cache/py/mcp-$MCP_VERSION"
             spec=("mcp==$MCP_VERSION") ;;
  kmock)     venv="$cache/py/kmock-$KMOCK_VERSION"
             spec=("kmock==$KMOCK_VERSION") ;;
  ministack) venv="$cache/py/ministack-$MINISTACK_VERSION-cbor2-$CBOR2_VERSION"
             spec=("ministack==$MINISTACK_VERSION" "cbor2==$CBOR2_VERSION") ;;
  st)        venv="$cache/py/sentence-transformers-$ST_VERSION"
             spec=("sentence-transformers==$ST_VERSION") ;;
  *) echo "unknown peer: $which" >&2; exit 2 ;;
esac
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  # Native, but without AMX: on CPUs that have it (Sapphire Rapids) under
  # a hypervisor that does not grant the AMX tile state, ggml's AMX matmul
  # segfaults on every multi-token batch (measured here: any prompt of two
  # tokens or more). GCC's explicit -mno-* win over -march=native. No
  # pip cache: it would hand back a wheel built with other flags.
  noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DCMAKE_C_FLAGS='$noamx' -DCMAKE_CXX_FLAGS='$noamx'" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$venv/bin/pip" install -q --no-cache-dir "${spec[@]}" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
