package postgres

import (
	"errors"
	"sync"
	"sync/atomic"
)

// errClosed is what a caller of a closed store's coalescer gets.
var errClosed = errors.New("store is closed")

// coalescer runs submitted items in groups, so that concurrent callers share
// one round trip and one transaction instead of paying for one each: up to
// workers groups run at once; a worker takes the first waiting item and
// every other item already waiting, up to max. An item therefore waits only
// while every worker is busy, and an idle server runs each item at once, as
// a group of one. Under load the groups grow by themselves, which is what
// turns per-statement and per-commit costs into per-group costs.
type coalescer[T any] struct {
	ch   chan T
	run  func([]T)
	max  int
	stop chan struct{} // closed by close
	dead chan struct{} // closed when the workers have exited
	wg   sync.WaitGroup
	once sync.Once

	groups, items atomic.Int64 // run so far, for tests and metrics
}

func newCoalescer[T any](workers, max int, run func([]T)) *coalescer[T] {
	c := &coalescer[T]{ch: make(chan T, workers*max), run: run, max: max,
		stop: make(chan struct{}), dead: make(chan struct{})}
	for range workers {
		c.wg.Go(c.loop)
	}
	go func() {
		c.wg.Wait()
		close(c.dead)
	}()
	return c
}

func (c *coalescer[T]) loop() {
	group := make([]T, 0, c.max)
	for {
		var first T
		select {
		case first = <-c.ch:
		case <-c.stop:
			// Run what is still queued, then exit.
			select {
			case first = <-c.ch:
			default:
				return
			}
		}
		group = append(group[:0], first)
	fill:
		for len(group) < c.max {
			select {
			case x := <-c.ch:
				group = append(group, x)
			default:
				break fill
			}
		}
		c.groups.Add(1)
		c.items.Add(int64(len(group)))
		c.run(group)
		clear(group)
	}
}

// submit queues x and waits until it has run, that is until done is
// closed by the run function; errClosed when the coalescer is closed first.
func (c *coalescer[T]) submit(x T, done <-chan struct{}) error {
	select {
	case c.ch <- x:
	case <-c.stop:
		return errClosed
	}
	select {
	case <-done:
		return nil
	case <-c.dead:
		// The workers ran everything queued before they exited, so done
		// may be closed too.
		select {
		case <-done:
			return nil
		default:
			return errClosed
		}
	}
}

// close stops the workers once the items already queued have run.
func (c *coalescer[T]) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.dead
}
