// Package workloads builds, starts and checks the self-checking programs
// that prove a checkpoint and restore kept a process's state.
//
// Each workload (C sources in c/, one Go program in gothreads/) builds one
// family of state, prints READY on stdout, and waits, frozen or not, for
// as long as it takes. On SIGUSR2 it checks its state the way an
// application would and prints PASS, or "FAIL: <what differed>", then
// exits 0 or 1. A workload writes its files into its current directory,
// which Start makes the scratch directory it is given. A NAME.desc file
// (JSON, see Desc) sits next to every built binary.
//
// The helpers here work on processes this package started (Start) and on
// processes a restore recreated with the same pid (Attach). They signal
// only those processes and the process group Start created for each.
package workloads
