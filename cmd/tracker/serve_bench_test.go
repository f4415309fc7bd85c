package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/baseline"
)

// BenchmarkServe measures one request through a real net/http server on
// loopback, for the tracker's handler (its default configuration, logs
// discarded) and for a bare handler that does the least the endpoint can:
// the difference in allocs/op is what the tracker adds to net/http's floor.
// The client is a raw keep-alive connection that allocates nothing per
// request, so allocs/op are the server's.
func BenchmarkServe(b *testing.B) {
	for _, handler := range []struct {
		name string
		h    http.Handler
	}{{"bare", baseline.Handler()}, {"tracker", benchHandler(b)}} {
		addr := benchServer(b, handler.h)
		b.Run("ingest/"+handler.name, func(b *testing.B) {
			var n atomic.Int64
			benchRequests(b, addr, 202, func(buf []byte) []byte {
				i := n.Add(1)
				body := fmt.Appendf(nil, `{"visitor_id":"v%d","url":"https://example.com/p/%d"}`, i%100000, i%100)
				buf = fmt.Appendf(buf, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
				return append(buf, body...)
			})
		})
		b.Run("query/"+handler.name, func(b *testing.B) {
			benchRequests(b, addr, 200, func(buf []byte) []byte {
				return append(buf, "GET /api/v1/visitors?url=https%3A%2F%2Fexample.com%2Fp%2F7 HTTP/1.1\r\nHost: x\r\n\r\n"...)
			})
		})
	}
}

// benchHandler is the tracker's handler as run builds it in its default
// configuration, with its logs discarded.
func benchHandler(b *testing.B) http.Handler {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sto, err := openStore(cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	var ready atomic.Bool
	ready.Store(true)
	return newHandler(newDeps(cfg, logger, sto, &ready))
}

func benchServer(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// benchRequests sends b.N requests made by next over one keep-alive
// connection, each after the answer to the one before, and checks statuses.
// The requests are made before the timer starts.
func benchRequests(b *testing.B, addr string, want int, next func([]byte) []byte) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	reqs := make([][]byte, b.N)
	for i := range reqs {
		reqs[i] = next(nil)
	}
	r := bufio.NewReader(conn)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := conn.Write(reqs[i]); err != nil {
			b.Fatal(err)
		}
		if status, err := readResponse(r); err != nil || status != want {
			b.Fatalf("status %d, %v", status, err)
		}
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length and returns
// its status, allocating nothing.
func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return 0, fmt.Errorf("status line %q: %v", line, err)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length := 0
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && strings.EqualFold(string(h[:15]), "content-length:") {
			length, _ = strconv.Atoi(strings.TrimSpace(string(h[15:])))
		}
	}
	if _, err := r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
