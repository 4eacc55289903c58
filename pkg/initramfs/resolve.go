package initramfs

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrUnknownModule is returned by Resolve for a module name that is
// neither a module, a built-in module nor an alias of either.
var ErrUnknownModule = errors.New("unknown module")

// Resolve returns the modules needed for names and device modaliases, with
// their dependencies, in load order (every module after the modules it
// needs).
//
// A name is a module name ("virtio-blk" or "virtio_blk") or an alias
// ("fs-xfs"). A name that is built into the kernel is skipped; a name that
// is not found is an error matching ErrUnknownModule that names it.
// Modaliases (pci:v00001AF4d00001001..., as read from sysfs) select every
// module whose alias pattern matches. A modalias that matches nothing is
// skipped, because most devices need no module or have a built-in driver.
//
// For each module, its soft dependencies from modules.softdep come
// before ("pre:") or after ("post:") it, as modprobe loads them; a soft
// dependency that resolves to nothing is skipped.
func (ix *Index) Resolve(names, modaliases []string) ([]Module, error) {
	var roots []string
	for _, n := range names {
		mods, builtin := ix.lookup(n)
		if len(mods) == 0 && !builtin {
			return nil, fmt.Errorf("resolve module %q in %s: %w", n, ix.dir, ErrUnknownModule)
		}
		roots = append(roots, mods...)
	}
	for _, a := range modaliases {
		roots = append(roots, ix.matchAliases(a)...)
	}

	o := orderer{ix: ix, state: make(map[string]visitState)}
	for _, name := range roots {
		if err := o.visit(name); err != nil {
			return nil, err
		}
	}
	return o.order, nil
}

// lookup returns the loadable modules that name stands for, and whether it
// names or aliases a built-in module.
func (ix *Index) lookup(name string) (mods []string, builtin bool) {
	canonical := ModuleName(name)
	if _, ok := ix.paths[canonical]; ok {
		return []string{canonical}, false
	}
	if ix.builtin[canonical] {
		return nil, true
	}
	for _, a := range ix.builtinAliases {
		if globMatch(a.pattern, name) {
			builtin = true
		}
	}
	return ix.matchAliases(name), builtin
}

// matchAliases returns the loadable modules that have an alias matching s,
// in modules.alias order, without duplicates.
func (ix *Index) matchAliases(s string) []string {
	var mods []string
	seen := make(map[string]bool)
	for _, a := range ix.aliases {
		if seen[a.module] || !globMatch(a.pattern, s) {
			continue
		}
		if _, ok := ix.paths[a.module]; !ok {
			continue
		}
		seen[a.module] = true
		mods = append(mods, a.module)
	}
	return mods
}

type visitState int

const (
	unvisited visitState = iota
	visiting
	done
)

// orderer builds a load order by depth-first search: a module is appended
// after its pre soft dependencies and hard dependencies, and before its
// post soft dependencies.
type orderer struct {
	ix    *Index
	state map[string]visitState
	order []Module
}

func (o *orderer) visit(name string) error {
	switch o.state[name] {
	case done:
		return nil
	case visiting:
		return fmt.Errorf("resolve module %s: dependency cycle", name)
	}
	o.state[name] = visiting
	sd := o.ix.softdeps[name]
	if err := o.visitSoft(sd.pre); err != nil {
		return err
	}
	// depmod lists the deepest dependencies last and modprobe loads the
	// list from its end, so walk it backwards to load in the same order.
	deps := o.ix.deps[name]
	for i := len(deps) - 1; i >= 0; i-- {
		dep := deps[i]
		if _, ok := o.ix.paths[dep]; !ok {
			return fmt.Errorf("resolve module %s: dependency %s is not in modules.dep", name, dep)
		}
		if err := o.visit(dep); err != nil {
			return err
		}
	}
	o.state[name] = done
	rel := o.ix.paths[name]
	o.order = append(o.order, Module{Name: name, Path: rel, Source: o.source(rel)})
	return o.visitSoft(sd.post)
}

// visitSoft visits the modules that soft dependencies stand for. A soft
// dependency that is already being visited (a cycle through soft
// dependencies, which modprobe tolerates) is skipped.
func (o *orderer) visitSoft(names []string) error {
	for _, n := range names {
		mods, _ := o.ix.lookup(n)
		for _, m := range mods {
			if o.state[m] == visiting {
				continue
			}
			if err := o.visit(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// source returns the path on this machine of a modules.dep path, which is
// relative to the modules directory unless depmod wrote it absolute.
func (o *orderer) source(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(o.ix.dir, rel)
}
