#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20) on its
# committed corpus (fuzz/corpus/TARGET), one after another, one process at
# a time. Exits non-zero on the first crash, timeout (10 s for one input)
# or out-of-memory; libFuzzer prints the input's path under fuzz/artifacts/.
# New corpus entries go to a temporary folder, so the committed corpus
# stays as it is. Installs cargo-fuzz if it is missing; cargo-fuzz needs
# nightly flags, which RUSTC_BOOTSTRAP=1 allows on the stable toolchain.
#
# Usage: fuzz/run.sh [SECONDS]
set -euo pipefail

seconds=${1:-20}
case $seconds in
'' | *[!0-9]*)
	echo "usage: fuzz/run.sh [SECONDS]" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
# cargo-fuzz looks for its binaries under fuzz/target.
unset CARGO_TARGET_DIR

if ! command -v cargo-fuzz >/dev/null; then
	cargo install cargo-fuzz --locked
fi

cargo fuzz build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
	echo "== fuzz target $target: $seconds s"
	mkdir -p "$work/$target"
	# Progress lines (NEW, REDUCE, pulse) are left out of the log.
	set +e
	cargo fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 2>&1 |
		grep -v '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\)'
	status=${PIPESTATUS[0]}
	set -e
	if [ "$status" -ne 0 ]; then
		echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
		exit 1
	fi
done
echo "fuzz: every target ran $seconds s without a crash"
