//go:build !unix

package diskstore

import "os"

// lockFile opens the lock file; without flock, another process is not kept
// out.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
}
