// Package netlock drops the packets of chosen TCP connections with an
// nftables table, so that a connection whose socket is being saved or
// rebuilt never sends its peer an ACK or a reset. The peer only
// retransmits until the socket exists again and the lock is lifted.
//
// A socket in TCP_REPAIR mode still acknowledges incoming data, which
// would then be missing from the saved queue, so the lock must be in
// place before the first queue is read. The table lives in the network
// namespace of the calling thread and outlives the process that set it
// up: the dump sets it and the restore lifts it.
package netlock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family inet) that holds the drop
// rules. Unlock deletes it whole.
const TableName = "ksu_netlock"

// Conn is one TCP connection, from the local socket's point of view.
type Conn struct {
	Local, Remote netip.AddrPort
}

func (c Conn) String() string { return c.Local.String() + " -> " + c.Remote.String() }

// Lock adds a drop rule for both directions of every connection in
// conns, on the input and output hooks, in one netlink batch: either
// all rules apply or none. It adds to the table of an earlier Lock.
func Lock(conns []Conn) error {
	nft, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	table := nft.AddTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	accept := nftables.ChainPolicyAccept
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"output", nftables.ChainHookOutput}} {
		chain := nft.AddChain(&nftables.Chain{Name: hook.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityRaw, Policy: &accept})
		for _, c := range conns {
			for _, dir := range [][2]netip.AddrPort{{c.Local, c.Remote}, {c.Remote, c.Local}} {
				exprs, err := dropExprs(dir[0], dir[1])
				if err != nil {
					return fmt.Errorf("lock %v: %w", c, err)
				}
				nft.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
			}
		}
	}
	if err := nft.Flush(); err != nil {
		return fmt.Errorf("add nftables drop rules for %d connections: %w", len(conns), err)
	}
	return nil
}

// Unlock deletes the table with every drop rule. It succeeds when there
// is no table.
func Unlock() error {
	nft, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	nft.DelTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	err = nft.Flush()
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete nftables table %s: %w", TableName, err)
	}
	return nil
}

// dropExprs matches TCP packets from src to dst and drops them.
func dropExprs(src, dst netip.AddrPort) ([]expr.Any, error) {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if src.Addr().Is6() && !src.Addr().Is4In6() {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16
	}
	if src.Addr().Is4() != dst.Addr().Is4() {
		return nil, fmt.Errorf("addresses %v and %v are of different families", src.Addr(), dst.Addr())
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		load(expr.PayloadBaseNetworkHeader, off, size),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: src.Addr().Unmap().AsSlice()},
		load(expr.PayloadBaseNetworkHeader, off+size, size),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst.Addr().Unmap().AsSlice()},
		load(expr.PayloadBaseTransportHeader, 0, 2),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(src.Port())},
		load(expr.PayloadBaseTransportHeader, 2, 2),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(dst.Port())},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}, nil
}

func load(base expr.PayloadBase, off, size uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: size}
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
