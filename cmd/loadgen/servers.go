package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"time"

	"github.com/webtracker/tracker/internal/baseline"
)

// server is a child process serving HTTP on a loopback port.
type server struct {
	name string // "bare" or "tracker"
	addr string
	pid  int
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // how it exited, once done is closed
}

// serverSpec says how to start a server and how to know it is ready.
type serverSpec struct {
	name      string
	path      string
	args      func(addr string) []string
	readyPath string // answers 200 once the server takes traffic
}

// Readiness: the tracker has /readyz; the bare server, which must have the
// two API routes and nothing else, is ready once it answers a query.
const (
	trackerReadyPath = "/readyz"
	bareReadyPath    = "/api/v1/visitors?url=https%3A%2F%2Fexample.com%2F"
	startTimeout     = 15 * time.Second
	stopTimeout      = 3 * time.Second
)

// startServer starts spec on a free loopback port and waits until it is
// ready. Its output goes to out. The caller must stop it, whatever happens.
func startServer(ctx context.Context, spec serverSpec, out io.Writer) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.path, spec.args(addr)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s server: %w", spec.name, err)
	}
	s := &server{name: spec.name, addr: addr, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, spec.readyPath); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls readyPath until it answers 200, the process exits, or
// startTimeout passes.
func (s *server) waitReady(ctx context.Context, readyPath string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		status, _, err := get(s.addr, readyPath)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("GET %s answered %d", readyPath, status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s server was not ready after %v: %w", s.name, startTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("the %s server exited before it was ready: %v", s.name, s.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exited reports an error if the process has exited, which in the middle of
// a run means every later figure would be wrong.
func (s *server) exited() error {
	select {
	case <-s.done:
		return fmt.Errorf("the %s server exited during the run: %v", s.name, s.err)
	default:
		return nil
	}
}

// stop asks the process to end (SIGTERM, so the tracker shuts down as it
// would in production), kills it if it has not within stopTimeout, and
// reaps it. It may be called more than once.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// startRedis starts a redis-server from PATH on a free loopback port, with
// no persistence, and waits until it answers PING.
func startRedis(ctx context.Context, out io.Writer) (*server, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("-redis: %w (apt-get install redis-server)", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	s := &server{name: "redis", addr: addr, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited before it was ready: %v", s.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v", addr, startTimeout)
		}
	}
}

// freeAddr returns a loopback address with a port free a moment ago. The
// child binds it a few milliseconds later; another process taking it in
// between would make the child fail to start, loudly.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// get sends one GET on a new connection and returns the status and body,
// for readiness probes and checks, not for load.
func get(addr, target string) (int, []byte, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.nc.Close()
	if err := c.nc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, nil, err
	}
	resp, err := c.roundTrip([]byte("GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"))
	return resp.status, c.body, err
}

// serveBare is the hidden -serve-bare mode: the baseline server, until ctx
// is done.
func serveBare(ctx context.Context, addr string) error {
	return serve(ctx, addr, baseline.Handler())
}

// serve serves h on addr until ctx is done. The server is plain on purpose,
// no timeouts and no logging: it is what net/http alone costs.
func serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
