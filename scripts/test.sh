#!/usr/bin/env bash
# The README's test command: install what is missing, build, and run every test twice:
# once in a normal build, once under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/test.sh            both builds
#   scripts/test.sh --quick    the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc 2>/dev/null || echo 2)

run_suite() {
	local dir=$1; shift
	echo "== build $dir"
	bash scripts/build.sh "$dir" "$@"
	echo "== test $dir"
	(cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

run_suite build
if [ $quick -eq 0 ]; then
	# halt_on_error keeps a sanitizer report from scrolling past; detect_leaks makes LSan
	# part of the run.
	export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_suite build-asan -DOPENDM_SANITIZE=ON
fi
echo "== all tests passed"
