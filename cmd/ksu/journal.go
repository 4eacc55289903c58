package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// recordUnitName is the transient unit that ksu-init installs on the boot
// after an update to run "ksu status --record". cmd/ksu-init writes it
// under the same name.
const recordUnitName = "ksu-record.service"

// recordStatus saves a copy of the run report in o.logDir and prints the
// summary only when this call saved it. Run by recordUnitName, whose
// output goes to the journal, it logs each update once, however often
// the unit or the operator runs it. Without a run report it does nothing:
// the boot was not an update.
func recordStatus(w io.Writer, o statusOptions) error {
	if _, err := os.Stat(o.report); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	res, err := readStatus(o)
	if err != nil {
		return err
	}
	if !res.created {
		return nil
	}
	return printStatus(w, res, o.json)
}
