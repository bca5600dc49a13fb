// Package redis implements the server/kv contract on Redis with go-redis v9
// (https://redis.io/docs/latest/commands/): the store shared by every
// replica for the authorization decision cache, its per-tenant version
// stamps and their invalidation messages (pub/sub), and the one-time values
// of the SMART server. It passes server/kv/kvtest against a real Redis.
//
// Take is GETDEL (Redis 6.2+), so a one-time value is read and removed in
// one atomic command. Pub/sub runs on go-redis's dedicated connection, which
// pings every second and reconnects and re-subscribes by itself; each
// re-subscription is delivered to the subscriber as a kv.Message with Resync
// set, because messages published meanwhile are lost.
//
// Like every adapter it knows one outside system and the core contracts
// (server/kv); only server/app and server/cmd import it. go-redis logs
// connection failures to stderr by default: the first New routes its log to
// the Logger of its Options (discarded when nil) through redis.SetLogger,
// which is process-wide.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsewire/pulsewire/server/kv"
)

var _ kv.Store = (*Store)(nil)

// Options configure New.
type Options struct {
	// URL is a redis:// or rediss:// URL as go-redis ParseURL reads it
	// (redis://[user:password@]host:port/db?dial_timeout=1s&...).
	URL string
	// Prefix is put in front of every key and channel name, so that
	// several deployments (or tests) can share one Redis.
	Prefix string
	// Logger receives go-redis's own log lines (at debug level); nil
	// discards them.
	Logger *slog.Logger
}

// Store is a kv.Store on Redis. It is safe for concurrent use.
type Store struct {
	c      *goredis.Client
	prefix string
}

// logOnce guards redis.SetLogger: the go-redis logger is process-wide.
var logOnce sync.Once

// slogLogger adapts slog to go-redis's logging interface.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	if s.l != nil {
		s.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}

// New returns a Store for opts.URL. It does not connect: a Redis that is
// down is reported by each call (and by Ping), so the server starts and
// serves without it. Unless the URL says otherwise, connections are dialed
// with a 2 s timeout, reads and writes time out after 1 s, a failed command
// is retried once, and every command also honours its context's deadline.
func New(opts Options) (*Store, error) {
	o, err := goredis.ParseURL(opts.URL)
	if err != nil {
		// url.Error quotes the URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parsing the Redis URL: %w", err)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	o.ContextTimeoutEnabled = true
	logOnce.Do(func() { goredis.SetLogger(slogLogger{opts.Logger}) })
	return &Store{c: goredis.NewClient(o), prefix: opts.Prefix}, nil
}

// Ping checks that Redis answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging Redis: %w", err)
	}
	return nil
}

// Clear deletes every key under the store's prefix (SCAN and DEL, so other
// prefixes are untouched): for tests, and to drop a deployment's cache. It
// refuses to run without a prefix.
func (s *Store) Clear(ctx context.Context) error {
	if s.prefix == "" {
		return errors.New("redis: Clear needs a key prefix")
	}
	iter := s.c.Scan(ctx, 0, escapeGlob(s.prefix)+"*", 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.c.Del(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return fmt.Errorf("redis DEL: %w", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redis SCAN: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("redis DEL: %w", err)
	}
	return nil
}

// escapeGlob escapes the glob metacharacters of a SCAN MATCH pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Close closes the connections. Subscriptions should be closed first.
func (s *Store) Close() error { return s.c.Close() }

func (s *Store) key(k string) string { return s.prefix + k }

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.key(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis GET: %w", err)
	}
	return b, nil
}

// Set implements kv.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.c.Set(ctx, s.key(key), value, expiration(ttl)).Err(); err != nil {
		return fmt.Errorf("redis SET: %w", err)
	}
	return nil
}

// SetNX implements kv.Store.
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ok, err := s.c.SetNX(ctx, s.key(key), value, expiration(ttl)).Result()
	if err != nil {
		return false, fmt.Errorf("redis SET NX: %w", err)
	}
	return ok, nil
}

// expiration maps kv's ttl (0: none) to go-redis's (0: none; it would read
// a negative value as KEEPTTL).
func expiration(ttl time.Duration) time.Duration {
	if ttl < 0 {
		return 0
	}
	return ttl
}

// Take implements kv.Store with GETDEL.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.GetDel(ctx, s.key(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis GETDEL: %w", err)
	}
	return b, nil
}

// Del implements kv.Store.
func (s *Store) Del(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.key(k)
	}
	if err := s.c.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("redis DEL: %w", err)
	}
	return nil
}

// Incr implements kv.Store.
func (s *Store) Incr(ctx context.Context, key string) (int64, error) {
	n, err := s.c.Incr(ctx, s.key(key)).Result()
	if err != nil {
		return 0, fmt.Errorf("redis INCR: %w", err)
	}
	return n, nil
}

// Publish implements kv.Store.
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := s.c.Publish(ctx, s.key(channel), msg).Err(); err != nil {
		return fmt.Errorf("redis PUBLISH: %w", err)
	}
	return nil
}

// subscription is one Subscribe: go-redis's PubSub and the goroutine that
// hands its messages to fn.
type subscription struct {
	ps   *goredis.PubSub
	done chan struct{}
	once sync.Once
	err  error
}

// Subscribe implements kv.Store. It returns once Redis confirmed the
// subscription, or an error when Redis is unreachable (the caller retries).
func (s *Store) Subscribe(ctx context.Context, channel string, fn func(kv.Message)) (kv.Subscription, error) {
	ps := s.c.Subscribe(ctx, s.key(channel))
	// The first reply is the confirmation of SUBSCRIBE: once it is read,
	// everything published later reaches us.
	msg, err := ps.Receive(ctx)
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("redis SUBSCRIBE: %w", err)
	}
	if _, ok := msg.(*goredis.Subscription); !ok {
		_ = ps.Close()
		return nil, fmt.Errorf("redis SUBSCRIBE: unexpected first reply %T", msg)
	}
	ch := ps.ChannelWithSubscriptions(
		goredis.WithChannelSize(1024),
		goredis.WithChannelHealthCheckInterval(time.Second),
		goredis.WithChannelPingTimeout(time.Second),
	)
	sub := &subscription{ps: ps, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		for m := range ch {
			switch m := m.(type) {
			case *goredis.Subscription:
				// A (re)subscription after a lost connection: what was
				// published in between is gone.
				if m.Kind == "subscribe" {
					fn(kv.Message{Resync: true})
				}
			case *goredis.Message:
				fn(kv.Message{Payload: []byte(m.Payload)})
			}
		}
	}()
	return sub, nil
}

// Close implements kv.Subscription. It must not be called from the
// subscription's own fn.
func (sub *subscription) Close() error {
	sub.once.Do(func() { sub.err = sub.ps.Close() })
	<-sub.done
	if sub.err != nil {
		return fmt.Errorf("closing a Redis subscription: %w", sub.err)
	}
	return nil
}
