package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dpkgStatus is the path of dpkg's database of package states. Tests
// point it at a fixture.
var dpkgStatus = "/var/lib/dpkg/status"

// checkModuleIndex checks that the modules of kernel release under
// modulesDir are indexed: ksu reads modules.dep to put the modules the new
// kernel needs into the initramfs. Debian's kernel packages ship no
// modules.dep; their postinst runs depmod, so the file is missing when
// the package is unpacked but not configured. The error names the command
// that writes the index.
func checkModuleIndex(modulesDir, release string) error {
	dep := filepath.Join(modulesDir, release, "modules.dep")
	_, err := os.Stat(dep)
	if err == nil {
		return nil
	}
	pkg, state := kernelPackageState(dpkgStatus, release)
	return fmt.Errorf("modules of kernel %s: %w (%s)", release, err, moduleIndexHint(release, pkg, state))
}

// moduleIndexHint returns the command that writes the missing module index
// of kernel release, whose package pkg is in dpkg state state ("" when
// dpkg does not know it).
func moduleIndexHint(release, pkg, state string) string {
	switch state {
	case "":
		return fmt.Sprintf("install the kernel's package, or run depmod %s", release)
	case "unpacked", "half-configured":
		return fmt.Sprintf("package %s is %s but not configured: run dpkg --configure -a, whose postinst runs depmod",
			pkg, state)
	case "half-installed":
		return fmt.Sprintf("package %s is half-installed: install it again", pkg)
	default:
		return fmt.Sprintf("package %s is %s but the index is missing: run depmod %s", pkg, state, release)
	}
}

// kernelPackageState returns the name and the dpkg state (installed,
// unpacked, half-configured...) of the package of kernel release, as
// recorded in the dpkg status file at path. Debian names the package
// linux-image-RELEASE, or linux-image-RELEASE-unsigned. It returns "", ""
// when no such package is on the system: for a kernel installed by "make
// install", for a package removed or purged, or without dpkg.
//
// Limitation: a kernel package with another name, such as one built by
// make-kpkg or bindeb-pkg, is not recognised. The error then suggests
// depmod in place of dpkg --configure, which writes the index too.
func kernelPackageState(path, release string) (pkg, state string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	names := map[string]bool{"linux-image-" + release: true, "linux-image-" + release + "-unsigned": true}
	var name, status string
	found := func() bool {
		state = dpkgState(status)
		return names[name] && state != "not-installed" && state != "config-files"
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20) // a Description line may be long
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if found() {
				return name, state
			}
			name, status = "", ""
		}
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			name = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Status: "); ok {
			status = v
		}
	}
	if found() {
		return name, state
	}
	return "", ""
}

// dpkgState returns the last word of a Status field, "want flag state":
// the package's state, such as installed or unpacked (see dpkg-query(1)).
func dpkgState(status string) string {
	f := strings.Fields(status)
	if len(f) != 3 {
		return "not-installed"
	}
	return f[2]
}
