// Package memkv is the in-process implementation of server/kv: the embedded
// default when no Redis is configured (one process, so there is nobody to
// share with). It passes server/kv/kvtest. Only server/app and tests should
// import it; everything else takes a kv.Store.
package memkv

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/pulsewire/pulsewire/server/kv"
)

var _ kv.Store = (*Store)(nil)

// subBuffer is how many messages a slow subscriber may fall behind before
// messages are dropped (and the subscriber told to resync).
const subBuffer = 1024

// Store is an in-process kv.Store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu   sync.Mutex
	data map[string]item
	subs map[string]map[*subscription]struct{}
}

type item struct {
	val     []byte
	expires time.Time // zero: never
}

// New returns an empty store.
func New() *Store {
	return &Store{
		now:  time.Now,
		data: map[string]item{},
		subs: map[string]map[*subscription]struct{}{},
	}
}

// get returns the live item under key; expired items are removed. s.mu is
// held.
func (s *Store) get(key string) (item, bool) {
	it, ok := s.data[key]
	if !ok {
		return item{}, false
	}
	if !it.expires.IsZero() && !s.now().Before(it.expires) {
		delete(s.data, key)
		return item{}, false
	}
	return it, true
}

func (s *Store) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.get(key)
	if !ok {
		return nil, kv.ErrNotFound
	}
	return clone(it.val), nil
}

// Set implements kv.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = item{val: clone(value), expires: s.expiry(ttl)}
	return nil
}

// SetNX implements kv.Store.
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.get(key); ok {
		return false, nil
	}
	s.data[key] = item{val: clone(value), expires: s.expiry(ttl)}
	return true, nil
}

// Take implements kv.Store.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.get(key)
	if !ok {
		return nil, kv.ErrNotFound
	}
	delete(s.data, key)
	return it.val, nil
}

// Del implements kv.Store.
func (s *Store) Del(ctx context.Context, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.data, k)
	}
	return nil
}

// errNotInteger is Incr's error for a value that is not a decimal int64.
var errNotInteger = errors.New("memkv: value is not an integer")

// Incr implements kv.Store.
func (s *Store) Incr(ctx context.Context, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.get(key)
	var n int64
	if ok {
		var err error
		if n, err = strconv.ParseInt(string(it.val), 10, 64); err != nil {
			return 0, errNotInteger
		}
	}
	if n == 1<<63-1 {
		return 0, errors.New("memkv: increment would overflow")
	}
	n++
	it.val = strconv.AppendInt(nil, n, 10)
	s.data[key] = it
	return n, nil
}

// Publish implements kv.Store.
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs[channel] {
		select {
		case sub.ch <- clone(msg):
		default:
			// The subscriber is behind: drop and tell it to resync.
			sub.mu.Lock()
			sub.lost = true
			sub.mu.Unlock()
		}
	}
	return nil
}

type subscription struct {
	s       *Store
	channel string
	ch      chan []byte
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu   sync.Mutex
	lost bool
}

// Subscribe implements kv.Store. The subscription is in place when it
// returns; it never loses messages except when fn falls more than 1024
// messages behind.
func (s *Store) Subscribe(ctx context.Context, channel string, fn func(kv.Message)) (kv.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub := &subscription{
		s: s, channel: channel,
		ch:      make(chan []byte, subBuffer),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.mu.Lock()
	if s.subs[channel] == nil {
		s.subs[channel] = map[*subscription]struct{}{}
	}
	s.subs[channel][sub] = struct{}{}
	s.mu.Unlock()
	go sub.run(fn)
	return sub, nil
}

func (sub *subscription) run(fn func(kv.Message)) {
	defer close(sub.stopped)
	for {
		select {
		case <-sub.done:
			return
		case msg := <-sub.ch:
			fn(kv.Message{Payload: msg})
			sub.mu.Lock()
			lost := sub.lost
			sub.lost = false
			sub.mu.Unlock()
			if lost {
				fn(kv.Message{Resync: true})
			}
		}
	}
}

// Close implements kv.Subscription. It must not be called from the
// subscription's own fn.
func (sub *subscription) Close() error {
	sub.once.Do(func() {
		sub.s.mu.Lock()
		delete(sub.s.subs[sub.channel], sub)
		if len(sub.s.subs[sub.channel]) == 0 {
			delete(sub.s.subs, sub.channel)
		}
		sub.s.mu.Unlock()
		close(sub.done)
	})
	<-sub.stopped
	return nil
}
