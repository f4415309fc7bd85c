package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// maxBody bounds a response body: the API's answers are tiny, and a runaway
// body means the parser lost its place in the stream.
const maxBody = 1 << 20

// conn is one keep-alive HTTP/1.1 connection of the load generator. It is
// not net/http's client, which costs several times what a minimal exchange
// does: the client must stay much cheaper than the servers it measures.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	body []byte // the last response's body, reused
}

// dial opens a connection to addr.
func dial(addr string) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), body: make([]byte, 0, 512)}, nil
}

// roundTrip writes one request, formatted in full by the caller, and reads
// its response; the body is left in c.body.
func (c *conn) roundTrip(req []byte) (response, error) {
	if _, err := c.nc.Write(req); err != nil {
		return response{}, err
	}
	resp, body, err := readResponse(c.br, c.body[:0])
	c.body = body
	return resp, err
}

// response is what the load generator needs of an HTTP/1.1 response.
type response struct {
	status int
	close  bool // the server closes the connection after this response
}

// errMalformed marks a response that does not parse; the connection cannot
// be trusted after it.
var errMalformed = errors.New("malformed response")

// readResponse reads one response from br and appends its body to body. It
// understands just enough HTTP/1.1 to stay in step on a keep-alive
// connection: the status line, Content-Length, chunked transfer coding and
// Connection: close. Anything else that would leave the end of the body
// unknown is an error, not a guess.
func readResponse(br *bufio.Reader, body []byte) (response, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return response{}, body, truncated("status line", err)
	}
	// "HTTP/1.1 202 Accepted\r\n": version, space, three digits, then a
	// space or the end of the line.
	if len(line) < 14 || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		(line[12] != ' ' && line[12] != '\r') {
		return response{}, body, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return response{}, body, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		status = status*10 + int(d-'0')
	}
	resp := response{status: status}

	contentLength, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return resp, body, truncated("header", err)
		}
		line = trimSpace(line)
		if len(line) == 0 {
			break
		}
		colon := slices.Index(line, ':')
		if colon <= 0 {
			return resp, body, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		name, value := line[:colon], trimSpace(line[colon+1:])
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok || (contentLength >= 0 && n != contentLength) {
				return resp, body, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			contentLength = n
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") {
				return resp, body, fmt.Errorf("%w: unsupported Transfer-Encoding %q", errMalformed, value)
			}
			chunked = true
		case equalFold(name, "connection"):
			resp.close = equalFold(value, "close")
		}
	}

	switch {
	case status < 200:
		// Nothing here sends Expect or upgrades, so an interim answer means
		// the exchange is not what this parser knows.
		return resp, body, fmt.Errorf("%w: unexpected interim status %d", errMalformed, status)
	case status == 204 || status == 304:
		return resp, body, nil
	case chunked && contentLength >= 0:
		// RFC 9112 §6.3: a sender must not send both; a response that does
		// may be an attempt at request smuggling, or a broken server.
		return resp, body, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", errMalformed)
	case chunked:
		body, err = readChunked(br, body)
		return resp, body, err
	case contentLength >= 0:
		body, err = readN(br, body, contentLength)
		return resp, body, err
	default:
		// The body would run to the end of the connection, which a
		// keep-alive client cannot wait for.
		return resp, body, fmt.Errorf("%w: status %d without Content-Length or chunked coding", errMalformed, status)
	}
}

// readChunked reads a chunked body (RFC 9112 §7.1), extensions and trailers
// skipped, and appends it to body.
func readChunked(br *bufio.Reader, body []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return body, truncated("chunk size", err)
		}
		line = trimSpace(line)
		if i := slices.Index(line, ';'); i >= 0 {
			line = trimSpace(line[:i])
		}
		size, ok := parseHex(line)
		if !ok {
			return body, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return body, truncated("trailer", err)
				}
				if len(trimSpace(line)) == 0 {
					return body, nil
				}
			}
		}
		if body, err = readN(br, body, size); err != nil {
			return body, err
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return body, truncated("chunk end", err)
		}
		if len(trimSpace(line)) != 0 {
			return body, fmt.Errorf("%w: chunk longer than its size", errMalformed)
		}
	}
}

// readN appends exactly n bytes of br to body.
func readN(br *bufio.Reader, body []byte, n int64) ([]byte, error) {
	if int64(len(body))+n > maxBody {
		return body, fmt.Errorf("%w: body over %d bytes", errMalformed, maxBody)
	}
	start := len(body)
	body = slices.Grow(body, int(n))[:start+int(n)]
	if _, err := io.ReadFull(br, body[start:]); err != nil {
		return body[:start], truncated("body", err)
	}
	return body, nil
}

// truncated describes a read error; an end of stream inside a response is
// unexpected wherever it happens.
func truncated(what string, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	case errors.Is(err, bufio.ErrBufferFull):
		return fmt.Errorf("%w: %s line too long", errMalformed, what)
	}
	return fmt.Errorf("reading the %s: %w", what, err)
}

// trimSpace trims spaces, tabs and line ends from both sides of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// equalFold reports whether b equals the lower-case ASCII s, ignoring case;
// unlike strings.EqualFold(string(b), s) it never copies b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecimal parses a non-negative decimal number of at most 18 digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a hexadecimal chunk size of at most 15 digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}
