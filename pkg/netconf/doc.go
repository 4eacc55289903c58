// Package netconf saves the network configuration of a network namespace
// (links, their addresses, and the routes of the main table) and applies
// it again on another kernel, where the same devices may come up under
// other names.
//
// ksu update records the configuration in the snapshot's Meta. ksu-init
// applies it before the restore, because a rebuilt TCP socket binds its
// old local address and sends through the old route.
//
// Links are matched by MAC address, and loopback by its name. Addresses
// and routes that the kernel creates by itself (IPv6 link-local
// addresses, and routes with protocol "kernel") are not saved.
package netconf
