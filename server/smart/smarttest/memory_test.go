package smarttest

import "testing"

func TestMemory(t *testing.T) {
	Run(t, func(*testing.T) Store { return NewMemory() })
}

func TestMemoryState(t *testing.T) {
	RunState(t, func(*testing.T) StateStore { return NewMemory() })
}
