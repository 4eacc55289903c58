// Package tests holds the end-to-end tests: they boot Debian guests in
// QEMU from the images that ./build.sh setup builds, and switch their
// kernels with ksu. Without KSU_IMAGES they skip.
package tests
