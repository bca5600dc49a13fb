// Package kv is the small key-value and publish/subscribe contract that
// Pulsewire's shared, short-lived state goes through: the authorization
// decision cache and its per-tenant version stamps (server/authz), and later
// rate limits, one-time authorization codes and revocations (server/smart).
//
// It is a pure contract: no I/O here. Implementations are server/kv/memkv
// (in-process, the embedded default) and adapters/redis (shared by every
// replica); both pass server/kv/kvtest. Any package may import kv; adapters
// may import it (it is a contract, like server/fhir).
//
// Values are opaque bytes. Keys and channels are plain strings; an
// implementation may add its own prefix. Nothing stored through kv may hold
// patient data in a key or a channel name (ids are fine, values are not).
package kv

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get and Take when the key does not exist (or
// has expired).
var ErrNotFound = errors.New("kv: key not found")

// Store is the contract. Every method may also return an error wrapping the
// implementation's failure (the server is unreachable, the context ended):
// callers treat any error other than ErrNotFound as "the store is down" and
// must stay correct without it.
type Store interface {
	// Get returns the value of key; ErrNotFound when there is none.
	Get(ctx context.Context, key string) ([]byte, error)

	// Set stores value under key, replacing any value and its expiry. ttl
	// > 0 makes the key expire after ttl; ttl == 0 means no expiry.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// SetNX stores value under key only when the key does not exist, and
	// reports whether it did. ttl as in Set.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)

	// Take returns the value of key and deletes the key, atomically: of two
	// concurrent Takes of one key, at most one gets the value.
	// ErrNotFound when there is none.
	Take(ctx context.Context, key string) ([]byte, error)

	// Del deletes the keys; missing keys are not an error.
	Del(ctx context.Context, keys ...string) error

	// Incr adds one to the decimal integer stored under key and returns the
	// new value; a missing key counts as 0. It keeps the key's expiry. An
	// error when the value is not a decimal int64.
	Incr(ctx context.Context, key string) (int64, error)

	// Publish sends msg to the current subscribers of channel. Delivery is
	// at most once: a subscriber that is disconnected misses it (and is
	// then told to resync, see Subscribe).
	Publish(ctx context.Context, channel string, msg []byte) error

	// Subscribe calls fn with every message published on channel after
	// Subscribe returns, in publish order, from one goroutine, until the
	// Subscription is closed. When the subscription was lost and is in
	// place again (or messages were dropped), fn gets a Message with
	// Resync set: messages may have been missed and the subscriber must
	// re-read whatever state it follows. ctx bounds only the setting up.
	// fn must not block for long; it holds up later messages.
	Subscribe(ctx context.Context, channel string, fn func(Message)) (Subscription, error)
}

// Message is one published message, or a resync notice.
type Message struct {
	Payload []byte
	// Resync reports that messages may have been missed (the connection
	// was lost and restored, or the subscriber fell behind); Payload is
	// empty.
	Resync bool
}

// Subscription is an active Subscribe.
type Subscription interface {
	// Close stops the subscription; fn is not called after Close returns.
	Close() error
}
