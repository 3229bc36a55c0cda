package registration

import (
	"container/heap"
	"slices"
	"strings"
)

// PageSelector keeps the size smallest keys offered that sort after a floor, with a
// value each (and one more, to tell whether more follow): a keyset page chosen in one
// pass over n candidates for O(n log size) comparisons, without sorting (or copying)
// the others.
type PageSelector[T any] struct {
	after string
	size  int
	h     pageHeap[T]
}

// NewPageSelector selects the page of size keys after after.
func NewPageSelector[T any](after string, size int) *PageSelector[T] {
	return &PageSelector[T]{after: after, size: size}
}

type pageItem[T any] struct {
	key string
	v   T
}

// pageHeap is a max-heap by key: its root is the largest key kept, the first to go.
type pageHeap[T any] []pageItem[T]

func (h pageHeap[T]) Len() int           { return len(h) }
func (h pageHeap[T]) Less(i, j int) bool { return h[i].key > h[j].key }
func (h pageHeap[T]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pageHeap[T]) Push(x any)        { *h = append(*h, x.(pageItem[T])) }
func (h *pageHeap[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// Offer considers key (with its value v). Keys must be distinct.
func (s *PageSelector[T]) Offer(key string, v T) {
	switch {
	case key <= s.after || s.size < 0:
	case len(s.h) <= s.size:
		heap.Push(&s.h, pageItem[T]{key, v})
	case key < s.h[0].key:
		s.h[0] = pageItem[T]{key, v}
		heap.Fix(&s.h, 0)
	}
}

// Page returns the page's values, by key, and whether more keys were offered past it.
func (s *PageSelector[T]) Page() (page []T, more bool) {
	items := slices.Clone(s.h)
	slices.SortFunc(items, func(a, b pageItem[T]) int { return strings.Compare(a.key, b.key) })
	more = len(items) > s.size
	items = items[:min(len(items), s.size)]
	page = make([]T, len(items))
	for i, it := range items {
		page[i] = it.v
	}
	return page, more
}

// PageOf is the keyset page of recs (any order, distinct refs): up to size records
// whose TrunkRef sorts after after and whose state keep accepts (nil: any), by ref;
// more reports whether others follow.
func PageOf(recs []Record, after string, keep func(State) bool, size int) (page []Record, more bool) {
	sel := NewPageSelector[*Record](after, size)
	for i := range recs {
		if keep == nil || keep(recs[i].State) {
			sel.Offer(recs[i].TrunkRef, &recs[i])
		}
	}
	found, more := sel.Page()
	page = make([]Record, len(found))
	for i, r := range found {
		page[i] = *r
	}
	return page, more
}
