package ownership

import (
	"context"
	"slices"
	"time"
)

// All is the ownership of a single replica: every trunk is its own, always valid,
// with fence 0; there are no leases to claim, renew or release.
type All struct{}

// ID is empty: a single replica writes no owner.
func (All) ID() string { return "" }

// Mine is always true.
func (All) Mine(string) bool { return true }

// Owner is unknown: nobody else could own a trunk.
func (All) Owner(string) (id, advertise string) { return "", "" }

// Valid always allows sending, with fence 0.
func (All) Valid(string) (int64, bool) { return 0, true }

// Peers is none.
func (All) Peers() []Peer { return nil }

// Alone is always true.
func (All) Alone() bool { return true }

// FirstWait is 0: nobody to wait for.
func (All) FirstWait() time.Duration { return 0 }

// Claim grants every ref at once, with fence 0 and no stored record (a single
// replica loaded every record at start), claimPiece at a time in one reused slice.
func (All) Claim(_ context.Context, refs []string, take func([]Claimed)) {
	buf := make([]Claimed, 0, min(len(refs), claimPiece))
	for piece := range slices.Chunk(refs, claimPiece) {
		buf = buf[:0]
		for _, ref := range piece {
			buf = append(buf, Claimed{Ref: ref})
		}
		take(buf)
	}
}

// Reclaim never runs: no lease can be lost.
func (All) Reclaim(_ context.Context, lost []string) (map[string]int64, []string) { return nil, lost }

// Release has nothing to release.
func (All) Release(context.Context, []string) {}

// Leave has nothing to hand over.
func (All) Leave(context.Context) {}

// Run has no leases to keep: it returns at once.
func (All) Run(context.Context, Engine, func(context.Context, string) (context.Context, func(RoundInfo))) {
}
