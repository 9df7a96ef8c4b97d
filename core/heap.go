package core

// Timed is an entry of a TimeHeap: When is its key.
type Timed interface{ When() int64 }

// TimeHeap is a min-heap on When, written out rather than through
// container/heap so that pushing and popping do not box entries. The
// zero value is empty; index 0 is the earliest entry.
type TimeHeap[T Timed] []T

// Push adds e.
func (h *TimeHeap[T]) Push(e T) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].When() <= a[i].When() {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

// Pop removes and returns the earliest entry; h must not be empty.
func (h *TimeHeap[T]) Pop() T {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	var zero T
	a[n] = zero
	a = a[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && a[l].When() < a[m].When() {
			m = l
		}
		if r < n && a[r].When() < a[m].When() {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// Shrunk returns h in a smaller array once most of its room is unused,
// or h itself.
func (h TimeHeap[T]) Shrunk() TimeHeap[T] {
	if cap(h) > 4096 && len(h) < cap(h)/4 {
		return append(make(TimeHeap[T], 0, 2*len(h)), h...)
	}
	return h
}
