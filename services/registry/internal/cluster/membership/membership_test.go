package membership_test

import (
	"fmt"
	"slices"
	"testing"

	"sipreg.dev/services/registry/internal/cluster/membership"
)

// refs returns n trunk refs named prefix-0 … prefix-(n-1).
func refs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func TestRendezvousBalance(t *testing.T) {
	t.Parallel()
	if got := membership.Rendezvous(nil, "t1"); got != "" {
		t.Errorf("Rendezvous over no members = %q", got)
	}
	three := []membership.Member{{ID: "replica-a"}, {ID: "replica-b"}, {ID: "replica-c"}}
	all := refs("trunk", 30_000)
	owner := make(map[string]string, len(all))
	count := make(map[string]int)
	for _, ref := range all {
		o := membership.Rendezvous(three, ref)
		owner[ref] = o
		count[o]++
	}
	for _, m := range three {
		if n := count[m.ID]; n < 8000 || n > 12000 {
			t.Errorf("%s owns %d of 30000, want 10000 ± 20%%", m.ID, n)
		}
	}
	t.Logf("shares: %v", count)

	// replica-b leaves: only its trunks move.
	two := []membership.Member{three[0], three[2]}
	moved := 0
	for _, ref := range all {
		o := membership.Rendezvous(two, ref)
		switch {
		case owner[ref] == "replica-b":
			moved++
		case o != owner[ref]:
			t.Fatalf("%s moved from %s to %s when replica-b left", ref, owner[ref], o)
		}
	}
	if moved != count["replica-b"] {
		t.Errorf("%d moved, want %d", moved, count["replica-b"])
	}

	// replica-d joins: trunks move only to it, about a quarter of them.
	four := append(slices.Clone(three), membership.Member{ID: "replica-d"})
	moved = 0
	for _, ref := range all {
		o := membership.Rendezvous(four, ref)
		switch {
		case o == "replica-d":
			moved++
		case o != owner[ref]:
			t.Fatalf("%s moved from %s to %s when replica-d joined", ref, owner[ref], o)
		}
	}
	if moved < 6000 || moved > 9000 {
		t.Errorf("%d of 30000 moved to the new member, want about 7500", moved)
	}
}
