#!/usr/bin/env bash
# build.sh OUTDIR: build every workload into OUTDIR, each binary next to
# its NAME.desc. The C workloads are static (gcc, glibc's static libc);
# gothreads is a static Go binary (CGO_ENABLED=0).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cflags=(-static -O2 -Wall -Wextra -pthread)

usage() {
	echo "usage: $0 OUTDIR" >&2
	exit 2
}

build_c() {
	local out=$1 desc name
	for desc in "$here"/c/*.desc; do
		name=$(basename "$desc" .desc)
		gcc "${cflags[@]}" -o "$out/$name" "$here/c/$name.c" "$here/c/wl.c" -lm
		cp "$desc" "$out/$name.desc"
	done
}

build_go() {
	local out=$1
	(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$out/gothreads" ./gothreads)
	cp "$here/gothreads/gothreads.desc" "$out/gothreads.desc"
}

main() {
	[[ $# -eq 1 ]] || usage
	mkdir -p "$1"
	local out
	out=$(cd "$1" && pwd)
	command -v gcc >/dev/null || { echo "build.sh: gcc not found (apt-get install gcc libc6-dev)" >&2; exit 1; }
	build_c "$out"
	build_go "$out"
}

main "$@"
