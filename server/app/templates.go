package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/pulsewire/pulsewire/mappings/device"
)

// setupTemplates loads the operator's template directory over the built-in
// templates and, when reload is positive, adds a runner that reloads it
// whenever a file in it changes — templates change without a restart. A
// directory that fails to load at start fails the start; a bad file later
// keeps the templates in force and is logged (by file name and reason only).
func (a *App) setupTemplates(set *device.Set, dir string, reload time.Duration) error {
	if dir == "" {
		return nil
	}
	stamp, err := dirStamp(dir)
	if err != nil {
		return fmt.Errorf("reading templates directory: %w", err)
	}
	if _, err := set.Reload(os.DirFS(dir)); err != nil {
		return fmt.Errorf("loading templates from %s: %w", dir, err)
	}
	if reload <= 0 {
		return nil
	}
	a.runners = append(a.runners, runner{name: "templates", run: func(ctx context.Context) error {
		t := time.NewTicker(reload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			now, err := dirStamp(dir)
			if err != nil {
				a.log.Warn("reading templates directory", "dir", dir, "err", err)
				continue
			}
			if now == stamp {
				continue
			}
			ts, err := set.Reload(os.DirFS(dir))
			if err != nil {
				a.log.Warn("templates not reloaded; the previous ones stay in force", "dir", dir, "err", err)
			} else {
				a.log.Info("templates reloaded", "dir", dir, "templates", ts.Len())
			}
			stamp = now // retry a bad directory only when it changes again
		}
	}})
	return nil
}

// dirStamp summarizes the names, sizes and modification times of the files
// in dir, so that a change to any of them changes the stamp.
func dirStamp(dir string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(os.DirFS(dir), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
