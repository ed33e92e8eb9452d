#!/usr/bin/env bash
# Builds benches/bare_sender.rs (release) and prints its binary's path, or
# nothing when it cannot be built. Used by held.sh and load.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bench bare_sender 2>/dev/null || true
ls -t target/release/deps/bare_sender-* 2>/dev/null | grep -v '\.d$' | head -1 || true
