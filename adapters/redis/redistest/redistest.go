// Package redistest gives tests a Redis key space of their own on the local
// test server (PULSEWIRE_TEST_REDIS, default redis://127.0.0.1:6379/0): a
// store under a random key prefix, whose keys are deleted when the test
// ends. When Redis is unreachable the test is skipped — or fails, when the
// CI environment variable is set, so CI never passes by skipping. Only
// tests import it.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/redis"
)

// URL is the server the tests use.
func URL() string {
	if u := os.Getenv("PULSEWIRE_TEST_REDIS"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Prefix returns a fresh random key prefix ("pwtest:<hex>:").
func Prefix(t testing.TB) string {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	return "pwtest:" + hex.EncodeToString(rnd[:]) + ":"
}

// Store returns a store on URL() under prefix (Prefix(t) when empty),
// skipping or failing the test as the package comment says when Redis is
// unreachable. Its keys are deleted and it is closed at cleanup. Several
// Stores with one prefix share their keys and channels: replicas.
func Store(t testing.TB, prefix string) *redis.Store {
	t.Helper()
	return StoreAt(t, URL(), prefix)
}

// StoreAt is Store on another address of the same Redis (a proxy in front
// of it, say). It does not check that the address answers.
func StoreAt(t testing.TB, url, prefix string) *redis.Store {
	t.Helper()
	Require(t)
	if prefix == "" {
		prefix = Prefix(t)
	}
	s, err := redis.New(redis.Options{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Through the test URL: the store's own address may be gone.
		if c, err := redis.New(redis.Options{URL: URL(), Prefix: prefix}); err == nil {
			if err := c.Clear(ctx); err != nil {
				t.Errorf("deleting test keys under %s: %v", prefix, err)
			}
			_ = c.Close()
		}
		_ = s.Close()
	})
	return s
}

// Require skips the test (or fails it under CI) when the test Redis does
// not answer.
func Require(t testing.TB) {
	t.Helper()
	s, err := redis.New(redis.Options{URL: URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis not reachable at %s (CI is set): %v", URL(), err)
		}
		t.Skipf("Redis not reachable at %s (set PULSEWIRE_TEST_REDIS): %v", URL(), err)
	}
}
