//go:build unix

package diskstore

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on the file at path, so that two
// processes never write one data directory. The lock goes with the process.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is locked by another process: %w", path, err)
	}
	return f, nil
}
