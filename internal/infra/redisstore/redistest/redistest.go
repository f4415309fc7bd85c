// Package redistest starts a real redis-server for tests: on a free loopback
// port, with its files in the test's temporary directory, stopped when the
// test ends.
//
// Where redis-server is not on PATH, tests that need it skip with a loud
// message; in CI (the CI environment variable set, as .ci/run does) they
// fail instead, since a skipped suite there would pass for nothing.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server started for a test.
type Server struct {
	Addr   string // 127.0.0.1:port
	dir    string
	path   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been reaped
	tb     testing.TB
	extra  []string
	bus    string // a cluster node's bus port; "" for a lone server
}

// URL is the server's address as a -redis-url.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Start starts a redis-server that appends every write to its log and
// syncs it before answering (appendfsync always), so that a killed server
// keeps every write it acknowledged. extra are more configuration
// arguments, which win over these (e.g. "--appendonly", "no").
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return startServer(tb, false, extra)
}

// startServer starts a lone server, or a cluster node with a bus port of
// its own.
func startServer(tb testing.TB, node bool, extra []string) *Server {
	tb.Helper()
	s := &Server{dir: tb.TempDir(), path: lookPath(tb, "redis-server"), tb: tb, extra: extra}
	var err error
	// A port free a moment ago may be taken by another test's server before
	// this one binds it: then this one exits, and other ports are tried, the
	// bus port too.
	for range 5 {
		if s.Addr, err = freeAddr(); err != nil {
			tb.Fatal(err)
		}
		if node {
			if s.bus, err = freePort(s.Addr); err != nil {
				tb.Fatal(err)
			}
		}
		if err = s.start(); err == nil {
			tb.Cleanup(s.Kill)
			return s
		}
	}
	tb.Fatalf("starting redis-server: %v", err)
	return nil
}

// lookPath finds a program of the redis-server package, or skips the test
// loudly; in CI, fails it.
func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not on PATH: the Redis tests need it (apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s; in CI this is a failure", msg)
		}
		fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", tb.Name(), msg)
		tb.Skip(msg)
	}
	return path
}

// freePort is a free loopback port other than addr's.
func freePort(addr string) (string, error) {
	for {
		a, err := freeAddr()
		if err != nil || a != addr {
			_, port, _ := net.SplitHostPort(a)
			return port, err
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start starts the server on s.Addr and waits until it answers, as itself
// (its process id), not another server that took the port.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{
		"--bind", "127.0.0.1", "--port", port, "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--protected-mode", "no", "--loglevel", "warning"}
	if s.bus != "" {
		args = append(args, "--cluster-port", s.bus)
	}
	s.cmd = exec.Command(s.path, append(args, s.extra...)...)
	var out strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() {
		_ = s.cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, out.String())
		default:
		}
		if err := ping(s.Addr); err == nil {
			if info, err := s.Do("INFO", "server"); err == nil &&
				strings.Contains(info, "process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n") {
				return nil
			}
		} else if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on %s did not answer PING: %v\n%s", s.Addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would. It may be called
// more than once.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same port and files, after Kill.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.tb.Fatalf("restarting redis-server: %v", err)
	}
}

// Do sends one command on a new connection and returns its reply line (a
// bulk string's content), for checks that should not depend on the client
// under test.
func (s *Server) Do(args ...string) (string, error) {
	r, done, err := s.send(args)
	if err != nil {
		return "", err
	}
	defer done()
	return readLine(r)
}

// Strings sends one command whose reply is an array of strings (KEYS,
// SENTINEL GET-MASTER-ADDR-BY-NAME…) and returns them.
func (s *Server) Strings(args ...string) ([]string, error) {
	r, done, err := s.send(args)
	if err != nil {
		return nil, err
	}
	defer done()
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if !strings.HasPrefix(line, "*") || err != nil {
		return nil, fmt.Errorf("%v: reply %q is not an array", args, strings.TrimSpace(line))
	}
	out := make([]string, 0, max(n, 0))
	for range n {
		v, err := readLine(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// send sends one command on a new connection, which done closes.
func (s *Server) send(args []string) (*bufio.Reader, func(), error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		c.Close()
		return nil, nil, err
	}
	return bufio.NewReader(c), func() { c.Close() }, nil
}

// readLine reads one reply that is not an array: a bulk string's content,
// or the line of any other (+OK, :1, -ERR …).
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "$") {
		return strings.TrimRight(line, "\r\n"), err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 {
		return strings.TrimRight(line, "\r\n"), err
	}
	body := make([]byte, n+2)
	_, err = io.ReadFull(r, body)
	return string(body[:n]), err
}

// Int sends one command whose reply is an integer.
func (s *Server) Int(args ...string) (int64, error) {
	line, err := s.Do(args...)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(line, ":") {
		return 0, fmt.Errorf("%v: reply %q is not an integer", args, line)
	}
	return strconv.ParseInt(line[1:], 10, 64)
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Pause stops the server's process (SIGSTOP) without killing it: it holds
// its connections and answers nothing, as a machine that hangs, until
// Resume.
func (s *Server) Pause() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}
