package registration

import (
	"container/heap"
	"slices"
	"strings"
)

// PageSelector keeps the Limit smallest keys offered that sort after After, with a
// value each: a keyset page chosen in one pass over n candidates for O(n log Limit)
// comparisons, without sorting (or copying) the others.
type PageSelector[T any] struct {
	After string
	Limit int
	h     pageHeap[T]
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
	case key <= s.After || s.Limit <= 0:
	case len(s.h) < s.Limit:
		heap.Push(&s.h, pageItem[T]{key, v})
	case key < s.h[0].key:
		s.h[0] = pageItem[T]{key, v}
		heap.Fix(&s.h, 0)
	}
}

// Sorted returns the values kept, by key.
func (s *PageSelector[T]) Sorted() []T {
	items := slices.Clone(s.h)
	slices.SortFunc(items, func(a, b pageItem[T]) int { return strings.Compare(a.key, b.key) })
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// PageOf is the keyset page of recs (any order, distinct refs): up to size records
// whose TrunkRef sorts after after and whose state keep accepts (nil: any), by ref;
// more reports whether others follow.
func PageOf(recs []Record, after string, keep func(State) bool, size int) (page []Record, more bool) {
	sel := PageSelector[*Record]{After: after, Limit: size + 1}
	for i := range recs {
		if keep == nil || keep(recs[i].State) {
			sel.Offer(recs[i].TrunkRef, &recs[i])
		}
	}
	return pageRecords(sel.Sorted(), size)
}

// pageRecords copies the first size of sorted; more when there were more.
func pageRecords(sorted []*Record, size int) ([]Record, bool) {
	more := len(sorted) > size
	sorted = sorted[:min(len(sorted), size)]
	out := make([]Record, len(sorted))
	for i, r := range sorted {
		out[i] = *r
	}
	return out, more
}
