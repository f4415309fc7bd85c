package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary act as the tracker itself when
// TRACKER_TEST_AS_MAIN is set, so that signal tests run the real main in a
// child process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("TRACKER_TEST_AS_MAIN") == "1" {
		os.Args = append(os.Args[:1], strings.Fields(os.Getenv("TRACKER_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// instance is a tracker started by run in this process, on a loopback port.
type instance struct {
	base   string // scheme://host:port
	client *http.Client
	logs   *logWatcher
	stop   context.CancelFunc
	done   chan struct{} // closed when run returns, with its error in err
	err    error
}

// start runs the tracker with args (after -addr 127.0.0.1:0 and JSON logs)
// and env, waits until /readyz answers 200, and stops it when the test ends.
func start(t testing.TB, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	in := &instance{client: &http.Client{Timeout: 10 * time.Second}, logs: logs, stop: cancel, done: make(chan struct{})}
	args = append([]string{"-addr", "127.0.0.1:0", "-log-format", "json"}, args...)
	getenv := func(k string) string { return env[k] }
	go func() {
		defer close(in.done)
		in.err = run(ctx, args, getenv, io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
			if in.err != nil {
				t.Errorf("run: %v", in.err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return after cancel")
		}
	})

	var line map[string]any
	select {
	case line = <-logs.waitFor("listening"):
	case <-in.done:
		t.Fatalf("run returned before listening: %v\nlogs:\n%s", in.err, logs)
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line after 10s; logs:\n%s", logs)
	}
	in.base = line["scheme"].(string) + "://" + line["addr"].(string)
	return in
}

// waitReady polls /readyz until it answers 200.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := in.client.Get(in.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s/readyz never answered 200", in.base)
}

// do sends a request and returns the status, headers and body.
func (in *instance) do(t *testing.T, method, path, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// post sends one event and returns the status.
func (in *instance) post(t *testing.T, visitor, page string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"visitor_id": visitor, "url": page})
	status, _, _ := in.do(t, "POST", "/api/v1/events", "application/json", string(body))
	return status
}

// visitors asks the count of a page and fails the test on a non-200 answer.
func (in *instance) visitors(t *testing.T, page string) (canonical string, n int64) {
	t.Helper()
	status, _, body := in.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape(page), "", "")
	if status != http.StatusOK {
		t.Fatalf("visitors(%s): %d %s", page, status, body)
	}
	var v struct {
		URL      string `json:"url"`
		Visitors int64  `json:"visitors"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v.URL, v.Visitors
}

// logWatcher collects JSON log lines and lets a test wait for a message.
type logWatcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	lines   []map[string]any
	waiters map[string][]chan map[string]any
}

func newLogWatcher() *logWatcher {
	return &logWatcher{waiters: make(map[string][]chan map[string]any)}
}

func (l *logWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var line map[string]any
		if json.Unmarshal(l.partial[:i], &line) == nil {
			l.lines = append(l.lines, line)
			msg, _ := line["msg"].(string)
			for _, c := range l.waiters[msg] {
				c <- line
			}
			delete(l.waiters, msg)
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// waitFor returns a channel that receives the next line with message msg,
// or the first one already logged.
func (l *logWatcher) waitFor(msg string) <-chan map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(chan map[string]any, 1)
	for _, line := range l.lines {
		if line["msg"] == msg {
			c <- line
			return c
		}
	}
	l.waiters[msg] = append(l.waiters[msg], c)
	return c
}

// matching returns the logged lines with message msg.
func (l *logWatcher) matching(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

func (l *logWatcher) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
