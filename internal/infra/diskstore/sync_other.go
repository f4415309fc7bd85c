//go:build !linux

package diskstore

import "os"

// syncData forces f's data to disk.
func syncData(f *os.File) error { return f.Sync() }
