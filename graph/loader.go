package graph

import (
	"context"
	"sync"
	"time"
)

// loader batches the loads of one request (a dataloader): keys asked for
// within wait of the first one, or until max are waiting, are fetched by
// one call of fetch. Results are remembered for the request, so a key is
// fetched at most once. gqlgen resolves the fields of a list's elements
// concurrently, which is what lets the keys of a whole list meet in one
// batch.
type loader[K comparable, V any] struct {
	ctx   context.Context // the request's: a batch outlives the field that started it
	fetch func(ctx context.Context, keys []K) ([]V, []error)
	wait  time.Duration
	max   int

	mu    sync.Mutex
	cur   *batch[K, V]
	cache map[K]*outcome[V]
}

type outcome[V any] struct {
	done chan struct{}
	v    V
	err  error
}

type batch[K comparable, V any] struct {
	keys    []K
	results []*outcome[V]
	started bool
	timer   *time.Timer
}

// newLoader returns a loader; fetch returns one value and one error per key,
// in the order of keys.
func newLoader[K comparable, V any](ctx context.Context, wait time.Duration, max int, fetch func(context.Context, []K) ([]V, []error)) *loader[K, V] {
	return &loader[K, V]{ctx: ctx, fetch: fetch, wait: wait, max: max, cache: map[K]*outcome[V]{}}
}

// Load returns the value of key, waiting for its batch.
func (l *loader[K, V]) Load(ctx context.Context, key K) (V, error) {
	l.mu.Lock()
	o, ok := l.cache[key]
	if !ok {
		o = &outcome[V]{done: make(chan struct{})}
		l.cache[key] = o
		b := l.cur
		if b == nil {
			b = &batch[K, V]{}
			l.cur = b
			b.timer = time.AfterFunc(l.wait, func() { l.start(b) })
		}
		b.keys = append(b.keys, key)
		b.results = append(b.results, o)
		if len(b.keys) >= l.max {
			l.mu.Unlock()
			b.timer.Stop()
			l.start(b)
			l.mu.Lock()
		}
	}
	l.mu.Unlock()
	select {
	case <-o.done:
		return o.v, o.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// start runs b once, whichever of its timer and its size comes first.
func (l *loader[K, V]) start(b *batch[K, V]) {
	l.mu.Lock()
	if b.started {
		l.mu.Unlock()
		return
	}
	b.started = true
	if l.cur == b {
		l.cur = nil
	}
	l.mu.Unlock()

	vs, errs := l.fetch(l.ctx, b.keys)
	for i, o := range b.results {
		if i < len(vs) {
			o.v = vs[i]
		}
		if i < len(errs) {
			o.err = errs[i]
		}
		close(o.done)
	}
}

// prime remembers v as key's value unless key was asked for already.
func (l *loader[K, V]) prime(key K, v V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cache[key]; ok {
		return
	}
	o := &outcome[V]{done: make(chan struct{}), v: v}
	close(o.done)
	l.cache[key] = o
}
