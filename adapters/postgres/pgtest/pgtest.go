// Package pgtest gives tests a PostgreSQL schema of their own on the local
// test server (PULSEWIRE_TEST_POSTGRES, default the development server): it is
// created fresh, and dropped when the test ends. When the server is
// unreachable the test is skipped — or fails, when the CI environment
// variable is set, so CI never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN is the server the tests use: PULSEWIRE_TEST_POSTGRES or the local
// development server.
func DSN() string {
	if dsn := os.Getenv("PULSEWIRE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultTestDSN
}

// AdminConn connects with the DSN's login role (no SET ROLE). When the server
// is unreachable the test is skipped, or fails when CI is set.
func AdminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DSN())
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable (set PULSEWIRE_TEST_POSTGRES; default %s): %v", defaultTestDSN, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// WithSearchPath returns dsn with the search_path runtime parameter set.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parsing test DSN: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// Schema creates a fresh schema, dropped at cleanup, and returns a DSN
// whose search_path is that schema.
func Schema(t testing.TB) (dsn, schema string) {
	t.Helper()
	admin := AdminConn(t)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema = "pw_test_" + hex.EncodeToString(rnd[:])
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, DSN(), schema), schema
}
