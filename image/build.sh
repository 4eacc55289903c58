#!/usr/bin/env bash
# image/build.sh: build the kernels, initramfs images and root disk that the
# tests boot under QEMU, into $KSU_OUT/images.
#
# ./build.sh setup runs this after it built $KSU_OUT/bin/{ksu,ksu-init,ksu-agent}.
# Inputs: qemu/versions, overridable by the environment (OLD_KERNEL_PKG,
# NEW_KERNEL_PKG, EXTRA_KERNEL_PKGS as a space- or comma-separated list).
# Every slow step is cached in $KSU_CACHE under a key hashed from its inputs:
# package names, the text of the functions that build it, the config files
# and the binaries. A rerun with nothing changed takes seconds, and a
# changed binary only re-assembles rootfs.img.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${KSU_OUT:-$repo/out}")
cache=$(realpath -m "${KSU_CACHE:-/var/cache/ksu}")
images=$out/images
tmpdir=$cache/tmp

# Packages debootstrap adds to the minbase variant: init, device and module
# handling, networking, the workload the tests preserve, tools for debugging
# on the serial console, and what Debian's kernel packages depend on, so a
# test can install one with dpkg. tiny-initramfs replaces initramfs-tools,
# whose kernel hook did not finish in 5 minutes under TCG.
guest_packages=(
	systemd systemd-sysv udev dbus kmod e2fsprogs iproute2 iputils-ping
	procps util-linux less netcat-openbsd redis-server redis-tools
	linux-base tiny-initramfs
)

# The old kernel's .deb goes here; images.env names it OLD_KERNEL_DEB.
guest_debs=/usr/local/lib/ksu-tests/debs

# Modules the first boot's initramfs loads: the virtio devices of the QEMU
# guest and the root filesystem. The initramfs tool skips built-in ones and
# adds their dependencies.
initrd_modules=(virtio_pci virtio_blk virtio_net virtio_console ext4)

# Units disabled in the guest: timers and a getty that only slow down a boot
# under software emulation, and redis-server, which the tests start
# themselves. Units that are not installed are skipped.
disabled_units=(
	apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
	e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer
	logrotate.timer getty@tty1.service redis-server.service
)

enabled_units=(systemd-networkd.service serial-getty@ttyS0.service ksu-agent.service)

rootfs_size=3G

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'image/build.sh: %s\n' "$*" >&2
	exit 1
}

# hash_text STRING... prints a key of 16 hex digits for its arguments.
hash_text() { printf '%s\0' "$@" | sha256sum | cut -c1-16; }

# hash_file FILE prints the SHA-256 of the contents of FILE.
hash_file() { sha256sum <"$1" | cut -d' ' -f1; }

# hash_tree DIR prints a key of the names, types, modes, link targets and
# contents of everything under DIR, or of nothing if DIR does not exist.
hash_tree() {
	[[ -d $1 ]] || {
		hash_text absent
		return
	}
	(
		cd "$1"
		find . -printf '%y %m %p %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
	) | sha256sum | cut -c1-16
}

# remove_tree DIR unmounts whatever a failed debootstrap left mounted below
# DIR, then deletes DIR without crossing into other filesystems.
remove_tree() {
	local dir=$1 mounts
	[[ -e $dir ]] || return 0
	mounts=$(findmnt -rn -o TARGET | awk -v prefix="$dir/" 'index($0, prefix) == 1' | LC_ALL=C sort -r)
	if [[ -n $mounts ]]; then
		xargs -r -d '\n' umount -l <<<"$mounts"
	fi
	rm -rf --one-file-system "$dir"
}

check_host() {
	[[ $(id -u) -eq 0 ]] || die "must run as root: debootstrap and the device nodes of the guest tree need it"
	local tool missing=()
	for tool in apt-get apt-cache dpkg-deb debootstrap depmod mkfs.ext4 e2fsck go sha256sum flock findmnt chroot; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	((${#missing[@]} == 0)) || die "missing commands: ${missing[*]} (./build.sh setup installs most of them)"
	for tool in ksu ksu-init ksu-agent; do
		[[ -x $out/bin/$tool ]] || die "missing $out/bin/$tool: run ./build.sh build first"
	done
}

# lock_cache holds an exclusive lock on the cache until the script exits,
# and clears temporary directories left by an interrupted run.
lock_cache() {
	mkdir -p "$cache" "$images"
	exec {lock_fd}>"$cache/lock"
	if ! flock -n "$lock_fd"; then
		log "waiting for another image build to release $cache/lock"
		flock "$lock_fd"
	fi
	remove_tree "$tmpdir"
	mkdir -p "$tmpdir"
	trap 'remove_tree "$tmpdir"' EXIT
}

# load_versions reads qemu/versions. A kernel package set in the
# environment wins over the file.
load_versions() {
	local old=${OLD_KERNEL_PKG:-} new=${NEW_KERNEL_PKG:-} extra=${EXTRA_KERNEL_PKGS:-}
	# shellcheck source=qemu/versions disable=SC1091 # followed with shellcheck -x
	source "$repo/qemu/versions"
	OLD_KERNEL_PKG=${old:-$OLD_KERNEL_PKG}
	NEW_KERNEL_PKG=${new:-$NEW_KERNEL_PKG}
	EXTRA_KERNEL_PKGS=${extra:-${EXTRA_KERNEL_PKGS:-}}
	EXTRA_KERNEL_PKGS=${EXTRA_KERNEL_PKGS//,/ }
}

# resolve_kernel_package PKG prints the package that ships the kernel
# image: PKG itself, or the linux-image-* package a metapackage depends on.
resolve_kernel_package() {
	local pkg=$1 dep i
	for ((i = 0; i < 4; i++)); do
		dep=$(apt-cache depends --important "$pkg" 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
		[[ -n $dep ]] || break
		pkg=$dep
	done
	printf '%s\n' "$pkg"
}

# download_kernel PKG prints the path of PKG's .deb in the cache, fetching
# apt's candidate version if the cache does not have it yet. Without an apt
# candidate, the newest cached .deb of PKG is used.
download_kernel() {
	local pkg=$1 version debs dl
	mkdir -p "$cache/debs"
	version=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	if [[ -z $version || $version == "(none)" ]]; then
		debs=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
		[[ -n $debs ]] || die "package $pkg not found: check the name, or run apt-get update"
		log "apt has no candidate for $pkg, using the cached $(basename "$debs")"
		printf '%s\n' "$debs"
		return
	fi
	debs=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb")
	if [[ -z $debs ]]; then
		log "downloading $pkg=$version"
		dl=$(mktemp -d "$tmpdir/download.XXXXXX")
		# apt fetches as the _apt user, which must be able to write there.
		chown _apt "$dl" 2>/dev/null || true
		(cd "$dl" && apt-get download -q "$pkg=$version") >&2 ||
			die "download $pkg=$version failed"
		mv "$dl"/*.deb "$cache/debs/"
		debs=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb")
		[[ -n $debs ]] || die "download $pkg=$version: apt-get wrote no ${pkg}_*.deb"
	fi
	printf '%s\n' "$debs"
}

# unpack_kernel DEB unpacks DEB into the cache and runs depmod, because
# Debian's kernel packages ship no modules.dep or modules.alias. It prints
# the directory, which contains root/ (boot/ and lib/modules/) and a file
# named release.
unpack_kernel() {
	local deb=$1 dir tmp vmlinuz release
	dir=$cache/kernels/$(hash_text "$(hash_file "$deb")" "$(declare -f unpack_kernel)")
	if [[ ! -f $dir/release ]]; then
		log "unpacking $(basename "$deb")"
		tmp=$(mktemp -d "$tmpdir/kernel.XXXXXX")
		dpkg-deb -x "$deb" "$tmp/root"
		vmlinuz=("$tmp"/root/boot/vmlinuz-*)
		[[ -f ${vmlinuz[0]} && ${#vmlinuz[@]} -eq 1 ]] ||
			die "$(basename "$deb") must ship exactly one /boot/vmlinuz-*"
		release=${vmlinuz[0]##*/vmlinuz-}
		[[ -d $tmp/root/lib/modules/$release ]] ||
			die "$(basename "$deb") ships no /lib/modules/$release"
		depmod -b "$tmp/root" "$release"
		printf '%s\n' "$release" >"$tmp/release"
		mkdir -p "$cache/kernels"
		remove_tree "$dir"
		mv "$tmp" "$dir"
	fi
	printf '%s\n' "$dir"
}

# fetch_kernels downloads and unpacks every kernel package and fills
# releases (in order old, new, extras; no duplicates), kernel_dirs
# (release -> unpacked directory), old_release, old_deb (the old kernel's
# .deb in the cache), new_release and extra_releases.
fetch_kernels() {
	local role pkg deb dir release extra roles=("old:$OLD_KERNEL_PKG" "new:$NEW_KERNEL_PKG")
	releases=() extra_releases=()
	declare -gA kernel_dirs=()
	for extra in $EXTRA_KERNEL_PKGS; do
		roles+=("extra:$extra")
	done
	for role in "${roles[@]}"; do
		pkg=$(resolve_kernel_package "${role#*:}")
		deb=$(download_kernel "$pkg")
		dir=$(unpack_kernel "$deb")
		release=$(<"$dir/release")
		log "kernel ${role%%:*}: $release (from $pkg)"
		case ${role%%:*} in
		old) old_release=$release old_deb=$deb ;;
		new) new_release=$release ;;
		*) [[ -n ${kernel_dirs[$release]:-} ]] || extra_releases+=("$release") ;;
		esac
		if [[ -z ${kernel_dirs[$release]:-} ]]; then
			releases+=("$release")
			kernel_dirs[$release]=$dir
		fi
	done
	prune_unpacked_kernels
}

# prune_unpacked_kernels deletes the unpacked kernels that this run does not
# use. Their .deb files stay in the cache.
prune_unpacked_kernels() {
	local dir used keep
	for dir in "$cache"/kernels/*; do
		[[ -d $dir ]] || continue
		keep=
		for used in "${kernel_dirs[@]}"; do
			[[ $dir == "$used" ]] && keep=1
		done
		[[ -n $keep ]] || remove_tree "$dir"
	done
}

# build_initramfs_tool builds image/mkinitramfs, which turns cmd/ksu-init
# into the base initramfs and collects modules into archives. It is built
# without -trimpath, because such a build fails to find the Go toolchain
# ("fork/exec bin/go").
build_initramfs_tool() {
	(cd "$repo" && CGO_ENABLED=0 go build -o "$out/bin/mkinitramfs" ./image/mkinitramfs)
}

# mkinitramfs ARGS... runs the initramfs tool on this source tree.
mkinitramfs() {
	(cd "$repo" && "$out/bin/mkinitramfs" "$@")
}

# build_base_initramfs builds ksu-init.cpio. The tool compiles cmd/ksu-init
# itself, so the cache key uses $KSU_OUT/bin/ksu-init, which ./build.sh
# build makes from the same sources.
build_base_initramfs() {
	local key file=$images/ksu-init.cpio
	key=$(hash_text "$(hash_file "$out/bin/ksu-init")" "$(hash_file "$out/bin/mkinitramfs")" "$(declare -f build_base_initramfs)")
	[[ -f $file && $(cat "$file.key" 2>/dev/null) == "$key" ]] && return
	log "building ksu-init.cpio"
	mkinitramfs base -o "$file.tmp"
	mv "$file.tmp" "$file"
	printf '%s\n' "$key" >"$file.key"
}

# build_kernel_images installs kernels/RELEASE/vmlinuz and initrd.cpio (the
# base initramfs followed by an archive of the modules the guest needs to
# mount its root disk and reach its devices) for every kernel.
build_kernel_images() {
	local release dir kdir modules key args=() m
	local -A used=()
	for m in "${initrd_modules[@]}"; do
		args+=(--module "$m")
	done
	for release in "${releases[@]}"; do
		dir=$images/kernels/$release
		kdir=${kernel_dirs[$release]}
		modules=$cache/initrd/$(hash_text "$kdir" "${args[*]}" "$(hash_file "$out/bin/mkinitramfs")")-modules.cpio
		mkdir -p "$dir" "$cache/initrd"
		if [[ ! -f $modules ]]; then
			log "collecting the initramfs modules of $release"
			mkinitramfs modules --modules-dir "$kdir/root/lib/modules/$release" \
				--release "$release" "${args[@]}" -o "$modules.tmp"
			mv "$modules.tmp" "$modules"
		fi
		used[$modules]=1
		cmp -s "$kdir/root/boot/vmlinuz-$release" "$dir/vmlinuz" ||
			install -m 0644 "$kdir/root/boot/vmlinuz-$release" "$dir/vmlinuz"
		key=$(hash_text "$(hash_file "$images/ksu-init.cpio")" "$modules")
		[[ -f $dir/initrd.cpio && $(cat "$dir/initrd.cpio.key" 2>/dev/null) == "$key" ]] && continue
		# The kernel reads concatenated archives only if each starts at a
		# multiple of 4 bytes.
		cp "$images/ksu-init.cpio" "$dir/initrd.cpio.tmp"
		truncate -s %4 "$dir/initrd.cpio.tmp"
		cat "$modules" >>"$dir/initrd.cpio.tmp"
		mv "$dir/initrd.cpio.tmp" "$dir/initrd.cpio"
		printf '%s\n' "$key" >"$dir/initrd.cpio.key"
	done
	for modules in "$cache"/initrd/*-modules.cpio; do
		[[ -n ${used[$modules]:-} ]] || rm -f "$modules"
	done
	prune_kernel_images
}

# prune_kernel_images removes kernels/* directories of kernels no longer built.
prune_kernel_images() {
	local dir release keep
	for dir in "$images"/kernels/*/; do
		[[ -d $dir ]] || continue
		keep=
		for release in "${releases[@]}"; do
			[[ ${dir%/} == "$images/kernels/$release" ]] && keep=1
		done
		[[ -n $keep ]] || rm -rf "$dir"
	done
}

# bootstrap_tree prints the cached debootstrap tree of the guest packages,
# making it first if needed. It is the slowest step because it downloads
# and installs every guest package.
# Limitation: the packages come from $DEBIAN_SUITE alone, without the
# security suite's updates. The tests do not need them, and an upgrade in
# a chroot would make the tree depend on the day it was built.
bootstrap_tree() {
	local key dir tmp
	key=$(hash_text "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "${guest_packages[*]}" "$(declare -f bootstrap_tree)")
	dir=$cache/bootstrap/$key
	if [[ ! -f $dir.done ]]; then
		log "debootstrap $DEBIAN_SUITE into $dir"
		tmp=$(mktemp -d "$tmpdir/bootstrap.XXXXXX")
		mkdir -p "$cache/debootstrap-debs"
		debootstrap --variant=minbase --components=main \
			--include="$(IFS=,; printf '%s' "${guest_packages[*]}")" \
			--cache-dir="$cache/debootstrap-debs" \
			"$DEBIAN_SUITE" "$tmp/root" "$DEBIAN_MIRROR" >"$cache/debootstrap.log" 2>&1 || {
			cat "$tmp/root/debootstrap/debootstrap.log" >>"$cache/debootstrap.log" 2>/dev/null || true
			tail -n 20 "$cache/debootstrap.log" >&2
			die "debootstrap failed: see $cache/debootstrap.log"
		}
		prune_siblings "$cache/bootstrap"
		mkdir -p "$cache/bootstrap"
		mv "$tmp/root" "$dir"
		touch "$dir.done"
	fi
	printf '%s\n' "$dir"
}

# prune_siblings DIR deletes the cached trees in DIR and their markers.
prune_siblings() {
	local tree
	for tree in "$1"/*; do
		[[ -e $tree ]] || continue
		[[ -d $tree ]] && remove_tree "$tree"
		rm -f "$tree"
	done
}

# configure_tree prints the cached guest tree with kernels and
# configuration installed, making it from the debootstrap tree if needed.
configure_tree() {
	local base key dir tmp release
	base=$(bootstrap_tree)
	key=$(hash_text "$base" "${releases[@]}" "${kernel_dirs[@]}" "$(hash_tree "$repo/image/rootfs")" \
		"$(basename "$old_deb")" "$(hash_file "$old_deb")" "$guest_debs" \
		"$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR" \
		"${disabled_units[*]}" "${enabled_units[*]}" \
		"$(declare -f configure_tree install_kernel configure_redis configure_units)")
	dir=$cache/rootfs/$key
	if [[ ! -f $dir.done ]]; then
		log "configuring the guest tree"
		tmp=$(mktemp -d "$tmpdir/rootfs.XXXXXX")
		cp -a "$base" "$tmp/root"
		for release in "${releases[@]}"; do
			install_kernel "$tmp/root" "$release"
		done
		install -D -m 0644 "$old_deb" "$tmp/root$guest_debs/$(basename "$old_deb")"
		cp -R --preserve=mode "$repo/image/rootfs/." "$tmp/root/"
		cat >"$tmp/root/etc/apt/sources.list" <<-EOF
			deb $DEBIAN_MIRROR $DEBIAN_SUITE main
			deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main
		EOF
		# An empty password lets root log in on the serial console.
		sed -i 's/^root:[^:]*:/root::/' "$tmp/root/etc/shadow"
		configure_redis "$tmp/root/etc/redis/redis.conf"
		configure_units "$tmp/root"
		prune_siblings "$cache/rootfs"
		mkdir -p "$cache/rootfs"
		mv "$tmp/root" "$dir"
		touch "$dir.done"
	fi
	printf '%s\n' "$dir"
}

# install_kernel TREE RELEASE copies a kernel's /boot files and modules
# into TREE and indexes the modules there.
install_kernel() {
	local tree=$1 release=$2 kroot=${kernel_dirs[$2]}/root
	cp -a "$kroot/boot/." "$tree/boot/"
	mkdir -p "$tree/lib/modules"
	cp -a "$kroot/lib/modules/$release" "$tree/lib/modules/"
	depmod -b "$tree" "$release"
}

# configure_redis CONF opens Debian's redis.conf for tests: any address,
# no protected mode, DEBUG commands allowed, and no daemonizing, so the
# test that starts redis-server is its parent.
configure_redis() {
	local conf=$1 key value
	[[ -f $conf ]] || die "missing $conf: is redis-server in guest_packages?"
	while read -r key value; do
		sed -i -E "/^#? ?$key /d" "$conf"
		printf '%s %s\n' "$key" "$value" >>"$conf"
	done <<-EOF
		bind * -::*
		protected-mode no
		enable-debug-command yes
		daemonize no
	EOF
}

# configure_units enables and disables systemd units in TREE offline,
# with the guest's own systemctl.
configure_units() {
	local tree=$1 unit
	chroot "$tree" systemctl --root=/ --quiet enable "${enabled_units[@]}"
	for unit in "${disabled_units[@]}"; do
		if [[ -n $(find "$tree"/{etc,usr/lib}/systemd/system -name "${unit/@*/@}*" -print -quit 2>/dev/null) ]]; then
			chroot "$tree" systemctl --root=/ --quiet disable "$unit"
		fi
	done
}

# assemble_rootfs writes rootfs.img: the configured tree plus the ksu
# binaries, the base initramfs and the test workloads, as a sparse ext4
# image made without mounting anything.
assemble_rootfs() {
	local tree key file=$images/rootfs.img stage
	tree=$(configure_tree)
	key=$(hash_text "$tree" "$(hash_file "$out/bin/ksu")" "$(hash_file "$out/bin/ksu-agent")" \
		"$(hash_file "$images/ksu-init.cpio")" "$(hash_tree "$out/workloads")" \
		"$rootfs_size" "$(declare -f assemble_rootfs)")
	[[ -f $file && $(cat "$file.key" 2>/dev/null) == "$key" ]] && return
	log "assembling rootfs.img"
	stage=$(mktemp -d "$tmpdir/stage.XXXXXX")
	# Hard links make the copy cheap. Files below are added as new inodes,
	# never written through a link, so the cached tree stays intact.
	cp -al "$tree" "$stage/root"
	install -D -m 0755 "$out/bin/ksu" "$stage/root/usr/sbin/ksu"
	install -D -m 0755 "$out/bin/ksu-agent" "$stage/root/usr/local/sbin/ksu-agent"
	install -D -m 0644 "$images/ksu-init.cpio" "$stage/root/usr/lib/ksu/ksu-init.cpio"
	if [[ -d $out/workloads ]]; then
		mkdir -p "$stage/root/usr/local/lib/ksu-tests"
		cp -R --preserve=mode "$out/workloads/." "$stage/root/usr/local/lib/ksu-tests/"
	fi
	rm -f "$file.tmp"
	truncate -s "$rootfs_size" "$file.tmp"
	mkfs.ext4 -q -F -L ksu-root -d "$stage/root" "$file.tmp"
	e2fsck -fn "$file.tmp" >"$tmpdir/e2fsck.log" 2>&1 ||
		die "e2fsck found errors in $file.tmp: $(cat "$tmpdir/e2fsck.log")"
	mv "$file.tmp" "$file"
	printf '%s\n' "$key" >"$file.key"
}

write_images_env() {
	cat >"$images/images.env.tmp" <<-EOF
		# Kernel releases of the images in this directory, written by image/build.sh.
		OLD_RELEASE=$old_release
		NEW_RELEASE=$new_release
		EXTRA_RELEASES="${extra_releases[*]}"
		OLD_KERNEL_DEB=$guest_debs/$(basename "$old_deb")
	EOF
	mv "$images/images.env.tmp" "$images/images.env"
}

main() {
	(($# == 0)) || die "takes no arguments: edit qemu/versions or set KSU_OUT, KSU_CACHE, OLD_KERNEL_PKG, NEW_KERNEL_PKG, EXTRA_KERNEL_PKGS"
	check_host
	lock_cache
	load_versions
	fetch_kernels
	build_initramfs_tool
	build_base_initramfs
	build_kernel_images
	assemble_rootfs
	write_images_env
	log "images in $images: $(cd "$images" && echo kernels/*/ rootfs.img ksu-init.cpio images.env)"
}

main "$@"
