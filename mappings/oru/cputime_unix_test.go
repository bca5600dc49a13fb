//go:build unix

package oru

import (
	"syscall"
	"time"
)

// cpuTime is the process's user plus system CPU time: on a shared machine
// it measures per-core cost where wall time also counts waiting for a CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
