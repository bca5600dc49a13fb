//go:build !unix

package oru

import "time"

// cpuTime is unknown here; the msgs/cpu-s metric is then not reported.
func cpuTime() time.Duration { return 0 }
