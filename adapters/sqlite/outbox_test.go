package sqlite

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/server/delivery"
	"github.com/pulsewire/pulsewire/server/delivery/deliverytest"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/delivery/outbox/outboxtest"
)

// TestOutbox runs the outbox store suite on SQLite.
func TestOutbox(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T) outbox.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}

// mllpTransport is the MLLP wiring of the delivery suite: the real
// adapters/mllp server as the engine and its client as the worker's
// transport. (A test-only import: the adapters stay independent.)
var mllpTransport = deliverytest.Transport{
	Serve: func(ln net.Listener, handle func(context.Context, []byte) []byte) func() {
		srv := &mllp.Server{Handler: handle}
		go func() { _ = srv.Serve(ln) }()
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}
	},
	Dial: func(addr string, dial, ack time.Duration) delivery.Sender {
		return delivery.WithTimeoutError(mllp.NewClient(addr, mllp.Options{DialTimeout: dial, AckTimeout: ack}), mllp.ErrAckTimeout)
	},
}

func openOutboxStore(t testing.TB) outbox.Store {
	return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
}

// TestDelivery runs the guaranteed-delivery suite (hook, worker, real MLLP
// peer) on SQLite. PULSEWIRE_OUTAGE=30s runs the outage case with the
// 30-second outage of issue 4.
func TestDelivery(t *testing.T) {
	deliverytest.Run(t, openOutboxStore, mllpTransport)
}

// BenchmarkDeliveryMLLP measures delivery with ACKs to one loopback MLLP
// destination on SQLite.
func BenchmarkDeliveryMLLP(b *testing.B) {
	deliverytest.Bench(b, openOutboxStore, mllpTransport)
}
