package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/webtracker/tracker/internal/baseline"
)

func TestReadResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		status    int
		body      string
		close     bool
		wantErr   error // nil: no error; errAny: any error
		remaining string
	}{
		{name: "content length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n" +
			baseline.Answer, status: 200, body: baseline.Answer},
		{name: "202 empty", in: "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n\r\n", status: 202},
		{name: "header case and spaces", in: "HTTP/1.1 200 OK\r\ncontent-LENGTH:   3  \r\n\r\nabc", status: 200, body: "abc"},
		{name: "status line without reason", in: "HTTP/1.1 204\r\n\r\n", status: 204},
		{name: "204 has no body", in: "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1", status: 204, remaining: "HTTP/1.1"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
			status: 200, body: "hello, world"},
		{name: "chunked with trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nnext",
			status: 200, body: "0123456789", remaining: "next"},
		{name: "connection close", in: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", status: 400, body: "no", close: true},
		{name: "leaves the next response", in: "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP/1.1 202", status: 202, remaining: "HTTP/1.1 202"},

		{name: "empty", in: "", wantErr: io.ErrUnexpectedEOF},
		{name: "not http", in: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: errMalformed},
		{name: "status not a number", in: "HTTP/1.1 2x2 Accepted\r\nContent-Length: 0\r\n\r\n", wantErr: errMalformed},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nContent-Length 3\r\n\r\nabc", wantErr: errMalformed},
		{name: "content length not a number", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: errMalformed},
		{name: "two content lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", wantErr: errMalformed},
		{name: "no length", in: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc", wantErr: errMalformed},
		{name: "gzip coding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", wantErr: errMalformed},
		{name: "both length and chunked", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantErr: errMalformed},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: errMalformed},
		{name: "chunk longer than its size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", wantErr: errMalformed},
		{name: "interim", in: "HTTP/1.1 100 Continue\r\n\r\n", wantErr: errMalformed},
		{name: "body too large", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", wantErr: errMalformed},
		{name: "truncated body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: io.ErrUnexpectedEOF},
		{name: "truncated headers", in: "HTTP/1.1 200 OK\r\nContent-Len", wantErr: io.ErrUnexpectedEOF},
		{name: "truncated chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			br := bufio.NewReader(strings.NewReader(tt.in))
			resp, body, err := readResponse(br, []byte("stale"[:0]))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if resp.status != tt.status || string(body) != tt.body || resp.close != tt.close {
				t.Errorf("got status %d body %q close %v, want %d %q %v", resp.status, body, resp.close, tt.status, tt.body, tt.close)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tt.remaining {
				t.Errorf("left %q unread, want %q", rest, tt.remaining)
			}
		})
	}
}

// TestReadResponseAllocs checks that reading an answer allocates nothing
// once the body buffer has grown, since the client must stay cheap.
func TestReadResponseAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of the whole process.
	one := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n" + baseline.Answer
	r := strings.NewReader("")
	br := bufio.NewReader(r)
	body := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(one)
		br.Reset(r)
		var err error
		if _, body, err = readResponse(br, body[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per response, want 0", allocs)
	}
}

// FuzzReadResponse checks that no input makes the parser panic, and that a
// response it accepts with a Content-Length has a body of that length.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 202 Accepted\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, body, err := readResponse(bufio.NewReader(bytes.NewReader(in)), nil)
		if err != nil {
			return
		}
		head, _, _ := bytes.Cut(in, []byte("\r\n\r\n"))
		for line := range strings.Lines(string(head)) {
			name, value, ok := strings.Cut(line, ":")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "content-length") {
				continue
			}
			if n, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && n != len(body) {
				t.Errorf("accepted Content-Length %d with a body of %d bytes", n, len(body))
			}
		}
	})
}

func BenchmarkReadResponse(b *testing.B) {
	one := "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Request-Id: 0123456789ab-1\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n\r\n"
	r := strings.NewReader("")
	br := bufio.NewReader(r)
	var body []byte
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(one)
		br.Reset(r)
		if _, body, _ = readResponse(br, body[:0]); len(body) != 0 {
			b.Fatal("unexpected body")
		}
	}
}
