package main

import "syscall"

// childProcAttr makes the kernel kill a server if loadgen dies without
// stopping it (SIGKILL, a crash), so that no server is left holding a port
// and a core of a shared machine.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
