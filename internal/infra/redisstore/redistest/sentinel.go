package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sentinel is a Sentinel setup started for a test: a master, its replica
// and three sentinels watching them as "mymaster", on loopback, stopped
// when the test ends.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []string // host:port
	tb              testing.TB
}

// MasterName is the name the sentinels know the master by.
const MasterName = "mymaster"

// StartSentinel starts the master, the replica and the sentinels, and
// waits until the replica is in sync and every sentinel knows the replica
// and the two other sentinels.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	master := Start(tb)
	host, port, _ := net.SplitHostPort(master.Addr)
	sn := &Sentinel{Master: master, Replica: Start(tb, "--replicaof", host, port), tb: tb}
	for i := range 3 {
		sn.Sentinels = append(sn.Sentinels, startSentinel(tb, master, i))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := sn.ready()
		if err == nil {
			return sn
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the sentinels are not ready after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSentinel starts one sentinel of master, whose configuration (which
// a sentinel rewrites) is in a directory of its own.
func startSentinel(tb testing.TB, master *Server, i int) string {
	tb.Helper()
	path := lookPath(tb, "redis-server")
	host, port, _ := net.SplitHostPort(master.Addr)
	for range 5 {
		addr, err := freeAddr()
		if err != nil {
			tb.Fatal(err)
		}
		_, myPort, _ := net.SplitHostPort(addr)
		conf := filepath.Join(tb.TempDir(), fmt.Sprintf("sentinel-%d.conf", i))
		if err := os.WriteFile(conf, []byte(strings.Join([]string{
			"port " + myPort, "bind 127.0.0.1", "protected-mode no", "dir " + filepath.Dir(conf),
			"sentinel monitor " + MasterName + " " + host + " " + port + " 2",
			"sentinel down-after-milliseconds " + MasterName + " 500",
			"sentinel failover-timeout " + MasterName + " 5000",
		}, "\n")+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(path, conf, "--sentinel")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		tb.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); <-exited })
		if up(addr, exited) {
			return addr
		}
		tb.Logf("sentinel %d on %s: %s", i, addr, out.String())
	}
	tb.Fatal("could not start a sentinel")
	return ""
}

// up waits until a server on addr answers PING, for 10s at most, or until
// it has exited (its port taken meanwhile by another).
func up(addr string, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		if ping(addr) == nil {
			return true
		}
	}
	return false
}

func (sn *Sentinel) ready() error {
	if link, _ := sn.Replica.Info("replication", "master_link_status"); link != "up" {
		return fmt.Errorf("replica link %q", link)
	}
	for _, addr := range sn.Sentinels {
		s := &Server{Addr: addr}
		fields, err := s.Strings("SENTINEL", "MASTER", MasterName)
		if err != nil {
			return err
		}
		kv := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			kv[fields[i]] = fields[i+1]
		}
		if kv["num-slaves"] != "1" || kv["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel %s knows %s replicas and %s other sentinels", addr, kv["num-slaves"], kv["num-other-sentinels"])
		}
	}
	return nil
}

// URL is the setup as a -redis-url: the sentinels, and the master's name.
func (sn *Sentinel) URL() string {
	u := "redis://" + sn.Sentinels[0] + "?master_name=" + MasterName
	for _, a := range sn.Sentinels[1:] {
		u += "&addr=" + a
	}
	return u
}

// MasterAddr is the master's address as the first sentinel that answers
// says.
func (sn *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, addr := range sn.Sentinels {
		hp, err := (&Server{Addr: addr}).Strings("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = fmt.Errorf("sentinel %s: %v, %v", addr, hp, err)
	}
	return "", last
}

// WaitFailover waits until the sentinels name the replica the master and it
// says it is one.
func (sn *Sentinel) WaitFailover() {
	sn.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, _ := sn.MasterAddr()
		if role, _ := sn.Replica.Info("replication", "role"); addr == sn.Replica.Addr && role == "master" {
			return
		}
		if time.Now().After(deadline) {
			sn.tb.Fatalf("the sentinels did not promote %s in 30s (master now %q)", sn.Replica.Addr, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
