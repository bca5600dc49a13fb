package smart

import (
	"testing"

	"github.com/pulsewire/pulsewire/server/smart/smarttest"
)

func TestMemoryEphemeral(t *testing.T) {
	smarttest.RunEphemeral(t, func(*testing.T) smarttest.Ephemeral { return NewMemoryEphemeral() })
}
