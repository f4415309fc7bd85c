package diskstore

import (
	"os"
	"syscall"
)

// syncData forces f's data to disk with fdatasync, which, unlike fsync,
// skips metadata a read does not need (the modification time); the size,
// which appends change, is still synced.
func syncData(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
