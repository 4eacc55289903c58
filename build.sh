#!/usr/bin/env bash
# build.sh: the one entry point to set up, build, test and demonstrate ksu.
#
# Products go to $KSU_OUT (default ./out). Downloads and the slow parts of
# the images (debootstrap trees, unpacked kernels) are cached in $KSU_CACHE
# (default /var/cache/ksu), keyed by their inputs, so a rerun with nothing
# changed takes seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${KSU_OUT:-$repo/out}
cache=${KSU_CACHE:-/var/cache/ksu}
export KSU_OUT=$out KSU_CACHE=$cache

usage() {
	cat <<EOF
usage: ./build.sh COMMAND

commands:
  setup   install missing packages, download the kernels, build the binaries
          and the guest images (cached; a rerun with nothing changed is quick)
  build   build the static binaries into $out/bin and the test workloads
          into $out/workloads
  demo    boot a guest on the old kernel and update it to the new one
  test    run every test, unit and end-to-end, with the time of each group
  bench   run the benchmarks and print their figures
  lint    gofmt, go vet, staticcheck, source greps, shellcheck

environment:
  KSU_OUT    products (default ./out)
  KSU_CACHE  downloads and cached image parts (default /var/cache/ksu)
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# Commands this script and the tests need, with the Debian package of each.
required_packages=(
	qemu-system-x86_64:qemu-system-x86
	qemu-img:qemu-utils
	cpio:cpio
	zstd:zstd
	xz:xz-utils
	mkfs.ext4:e2fsprogs
	debootstrap:debootstrap
	depmod:kmod
	file:file
	shellcheck:shellcheck
	redis-cli:redis-tools
)

install_packages() {
	local missing=() entry
	for entry in "${required_packages[@]}"; do
		command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
	done
	if ((${#missing[@]} == 0)); then
		return
	fi
	[[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root to install them"
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

cmd_build() {
	mkdir -p "$out/bin"
	cd "$repo"
	export CGO_ENABLED=0
	local flags=(-trimpath -ldflags='-s -w')
	go build "${flags[@]}" -o "$out/bin/ksu" ./cmd/ksu
	go build "${flags[@]}" -o "$out/bin/ksu-init" ./cmd/ksu-init
	go build "${flags[@]}" -o "$out/bin/ksu-agent" ./qemu/guestagent
	mkdir -p "$out/workloads"
	tests/workloads/build.sh "$out/workloads"
}

cmd_setup() {
	install_packages
	log "building binaries"
	cmd_build
	log "building images"
	"$repo/image/build.sh"
}

# timed NAME COMMAND... runs COMMAND and records how long it took under NAME.
timings=()
timed() {
	local name=$1 start rc=0
	shift
	start=$(date +%s)
	"$@" || rc=$?
	timings+=("$(printf '%-10s %5ss  %s' "$name" $(($(date +%s) - start)) \
		"$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")")")
	return $rc
}

print_timings() {
	log "time per group"
	printf '  %s\n' "${timings[@]}" >&2
}

cmd_test() {
	local rc=0
	timed setup cmd_setup || { print_timings; return 1; }
	cd "$repo"
	timed vet go vet ./... || rc=1
	timed unit run_unit || rc=1
	timed e2e run_e2e || rc=1
	print_timings
	return $rc
}

# run_unit runs the host tests, then once more each top-level test that
# failed, in its own package. Some of them measure races of the kernel
# (ptrace stops, signal delivery) on a machine that CI may load. Both
# runs are printed, and a test that fails twice fails the group. A
# package that fails without naming a test (a build error), or whose
# test binary did not finish (a panic, a timeout), fails the group at
# once.
run_unit() {
	local output retries pkg tests rc=0
	output=$(mktemp)
	if go test -count=1 ./... 2>&1 | tee "$output"; then
		rm -f "$output"
		return 0
	fi
	retries=$(failed_tests "$output")
	rm -f "$output"
	[[ -n $retries && $retries != *'!'* ]] || return 1
	while read -r pkg tests; do
		log "retrying once in $pkg the tests that failed: $tests"
		go test -count=1 -run "^($tests)\$" "$pkg" || rc=1
	done <<<"$retries"
	return $rc
}

# failed_tests reads the output of a non-verbose "go test" and prints one
# line per failed package: its path and its failed top-level tests joined
# by "|". It prints "!" when a package failed without naming a test, or
# when its test binary did not end with the "FAIL" line of a finished
# run: after a panic, a timeout or a crash, the tests that never ran
# would not be retried.
failed_tests() {
	awk '
		/^--- FAIL: / { names = names (names == "" ? "" : "|") $3 }
		/^FAIL\t/ {
			if (names == "" || prev != "FAIL" || $0 ~ /\[(build|setup) failed\]/) {
				print "!"
			} else {
				print $2, names
			}
			names = ""
		}
		{ prev = $0 }
	' "$1"
}

# run_e2e runs the QEMU tests, then once more the top-level tests that
# failed: under software emulation a guest kernel now and then oopses or
# hangs in its own early boot. Both runs are printed; a test that fails
# twice fails the group.
run_e2e() {
	local output failed
	output=$(mktemp)
	if KSU_IMAGES="$out/images" go test -count=1 -timeout 60m -v ./tests/ 2>&1 | tee "$output"; then
		rm -f "$output"
		return 0
	fi
	failed=$(sed -n 's/^--- FAIL: \(Test[A-Za-z0-9_]*\) .*/\1/p' "$output" | sort -u | paste -sd '|' -)
	rm -f "$output"
	[[ -n $failed ]] || return 1
	log "retrying once the tests that failed: $failed"
	KSU_IMAGES="$out/images" go test -count=1 -timeout 60m -v -run "^($failed)\$" ./tests/
}

cmd_demo() {
	cmd_setup
	cd "$repo"
	KSU_IMAGES="$out/images" go run ./tests/demo
}

cmd_bench() {
	cmd_setup
	cd "$repo"
	KSU_IMAGES="$out/images" go test -count=1 -run '^$' -bench . -benchtime 1x ./...
}

cmd_lint() {
	cd "$repo"
	local rc=0 files
	files=$(gofmt -l .)
	[[ -z $files ]] || { printf 'gofmt needed:\n%s\n' "$files"; rc=1; }
	go vet ./... || rc=1
	if ! command -v staticcheck >/dev/null 2>&1; then
		GOBIN=${GOBIN:-$(go env GOPATH)/bin} go install honnef.co/go/tools/cmd/staticcheck@latest
		PATH=$PATH:$(go env GOPATH)/bin
	fi
	staticcheck ./... || rc=1
	lint_greps || rc=1
	shellcheck -x build.sh .ci/run image/*.sh tests/workloads/*.sh || rc=1
	return $rc
}

# lint_greps enforces the source rules that no Go tool checks.
lint_greps() {
	local rc=0 hits
	hits=$(grep -rlE --include='*.go' '"unsafe"|syscall\.Syscall|unix\.Syscall|unix\.RawSyscall' \
		cmd pkg qemu tests | grep -v '^pkg/internal/sys/.*_unsafe\.go$' || true)
	[[ -z $hits ]] || { printf 'unsafe or raw Syscall outside pkg/internal/sys/*_unsafe.go:\n%s\n' "$hits"; rc=1; }
	hits=$(grep -rnE --include='*.go' 'log\.(Print|Fatal)|os\.Exit\(' pkg || true)
	[[ -z $hits ]] || { printf 'log.Print*, log.Fatal* or os.Exit under pkg/:\n%s\n' "$hits"; rc=1; }
	hits=$(grep -rnE --include='*.go' '//[[:space:]]*TODO[[:space:]]*$' cmd pkg qemu tests || true)
	[[ -z $hits ]] || { printf 'bare TODO:\n%s\n' "$hits"; rc=1; }
	return $rc
}

main() {
	local cmd=${1:-}
	case $cmd in
	setup | build | demo | test | bench | lint)
		shift
		"cmd_$cmd" "$@"
		;;
	-h | --help | help | '')
		usage
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
