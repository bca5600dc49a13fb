package fhir

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns a new server-assigned resource id: a UUID version 7
// (RFC 9562 §5.7), 36 characters, which orders by creation time. The
// first 48 bits are the Unix time in milliseconds and the next 12 the
// fraction of the millisecond (§6.2, method 3); the rest is random.
//
// Time order is what keeps a write-heavy store fast: every index a store
// keys by id (the primary key, the per-resource index rows) then grows at
// its right edge, in pages that stay in memory, instead of at a random
// page of an index far larger than the database's buffer cache. The time
// the id tells is the one meta.lastUpdated of the first version tells
// anyway.
func NewID() string { return newIDAt(time.Now()) }

func newIDAt(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails
	ms := uint64(t.UnixMilli())
	frac := uint64(t.Nanosecond()%int(time.Millisecond)) * 4096 / uint64(time.Millisecond) // 12 bits
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = 0x70 | byte(frac>>8)
	b[7] = byte(frac)
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
