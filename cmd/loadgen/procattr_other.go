//go:build !linux

package main

import "syscall"

// childProcAttr has nothing to add outside Linux, which alone can tie a
// child's life to its parent's.
func childProcAttr() *syscall.SysProcAttr { return nil }
