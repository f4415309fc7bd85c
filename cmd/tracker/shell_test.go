package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtracker/tracker/api"
	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/diskstore"
	"github.com/webtracker/tracker/internal/infra/metrics"
)

// TestTLS serves HTTPS with a certificate made here and checks HTTP/2, the
// API over it, and that TLS below 1.2 is refused.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	in := start(t, nil, "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(in.base, "https://") {
		t.Fatalf("base %s is not https", in.base)
	}
	in.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	in.waitReady(t)
	if s := in.post(t, "tls-visitor", "https://secure.example/"); s != http.StatusAccepted {
		t.Fatalf("POST over TLS: %d", s)
	}
	if _, n := in.visitors(t, "https://secure.example/"); n != 1 {
		t.Errorf("%d visitors, want 1", n)
	}
	resp, err := in.client.Get(in.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil {
		t.Errorf("protocol %s, want HTTP/2 over TLS", resp.Proto)
	}

	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(in.base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + strings.TrimPrefix(in.base, "https://") + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP was served on the TLS port")
		}
		resp.Body.Close()
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to a temporary
// directory and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tracker test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestGracefulShutdown starts a request, begins shutdown while its body is
// still on its way, and checks: /readyz turns 503, the listener closes, the
// in-flight request completes with 202, and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-shutdown-delay", "300ms"},
			func(string) string { return "" }, io.Discard, logs)
	}()
	line := <-logs.waitFor("listening")
	addr := line["addr"].(string)
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}

	// A request in flight: headers and half the body sent.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"visitor_id":"in-flight","url":"https://drain.example/"}`
	fmt.Fprintf(conn, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:20])
	time.Sleep(50 * time.Millisecond) // let the server start reading it

	// A keep-alive connection opened before shutdown sees readiness turn.
	resp, err := client.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz before shutdown: %v %v", resp, err)
	}
	resp.Body.Close()

	cancel()
	<-logs.waitFor("shutting down")
	resp, err = client.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("readyz during the drain delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during shutdown = %d, want 503", resp.StatusCode)
	}

	// Past the delay the listener closes: poll until a dial is refused.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 5s after shutdown began")
		}
	}

	fmt.Fprint(conn, body[20:])
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 202 ") {
		t.Fatalf("in-flight request: %q, %v; want 202", status, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	if len(logs.matching("stopped")) != 1 {
		t.Errorf("no stopped line:\n%s", logs)
	}
}

// TestSignalShutdown runs the real main in a child process, sends SIGTERM
// and SIGINT, and checks a clean exit with status 0.
func TestSignalShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			child := startMain(t)
			resp, err := http.Get(child.base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := child.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := child.cmd.Wait(); err != nil {
				t.Fatalf("exit after %v: %v\n%s", sig, err, child.logs)
			}
			if len(child.logs.matching("stopped")) != 1 {
				t.Errorf("no stopped line:\n%s", child.logs)
			}
		})
	}
}

// child is the real main running in a child process.
type child struct {
	cmd  *exec.Cmd
	base string // http://host:port
	logs *logWatcher
}

// startMain runs the real main in a child process with args (after -addr
// 127.0.0.1:0 and JSON logs; split on spaces) and waits until it listens.
// The child is killed when the test ends if it is still running.
func startMain(t *testing.T, args ...string) *child {
	t.Helper()
	return startMainIn(t, "", args...)
}

// startMainIn is startMain in the working directory dir ("" for this one).
func startMainIn(t *testing.T, dir string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TRACKER_TEST_AS_MAIN=1", "TRACKER_LOG_LEVEL=info",
		"TRACKER_TEST_ARGS="+strings.Join(append([]string{"-addr", "127.0.0.1:0", "-log-format", "json"}, args...), " "))
	logs := newLogWatcher()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	select {
	case line := <-logs.waitFor("listening"):
		return &child{cmd: cmd, base: "http://" + line["addr"].(string), logs: logs}
	case <-time.After(20 * time.Second):
		t.Fatalf("child never listened:\n%s", logs)
		return nil
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		c, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.addr != ":8080" || c.logFormat != "text" || c.requestTimeout != 5*time.Second || c.rateLimit != 0 || c.policy != (domain.URLPolicy{}) ||
			c.dataDir != "" || c.fsync != diskstore.SyncInterval || c.fsyncInterval != time.Second || c.snapshotInterval != time.Minute {
			t.Errorf("defaults %+v", c)
		}
	})
	t.Run("environment, then flags", func(t *testing.T) {
		env := map[string]string{"TRACKER_ADDR": ":9999", "TRACKER_LOG_LEVEL": "debug", "TRACKER_RATE_LIMIT": "5",
			"TRACKER_TRUSTED_PROXIES": "10.0.0.0/8", "TRACKER_URL_STRIP_QUERY": "true", "TRACKER_REQUEST_TIMEOUT": "2s"}
		c, err := parseConfig([]string{"-addr", ":7777"}, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.addr != ":7777" || c.logLevel != "debug" || c.rateLimit != 5 || len(c.trustedProxies) != 1 ||
			!c.policy.StripQuery || c.requestTimeout != 2*time.Second {
			t.Errorf("config %+v", c)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad env value":     {env: map[string]string{"TRACKER_REQUEST_TIMEOUT": "soon"}, want: "TRACKER_REQUEST_TIMEOUT"},
		"bad log format":    {args: []string{"-log-format", "xml"}, want: "-log-format"},
		"cert without key":  {args: []string{"-tls-cert", "c.pem"}, want: "-tls-key"},
		"bad proxies":       {args: []string{"-trusted-proxies", "10.0.0.0/99"}, want: "-trusted-proxies"},
		"negative timeout":  {args: []string{"-shutdown-timeout", "-1s"}, want: "-shutdown-timeout"},
		"unknown flag":      {args: []string{"-nope"}, want: "nope"},
		"stray argument":    {args: []string{"serve"}, want: "unexpected"},
		"negative rate":     {args: []string{"-rate-limit", "-1"}, want: "-rate-limit"},
		"bad header budget": {args: []string{"-max-header-bytes", "0"}, want: "-max-header-bytes"},
		"bad fsync mode":    {env: map[string]string{"TRACKER_FSYNC": "sometimes"}, want: "TRACKER_FSYNC"},
		"zero snapshots":    {args: []string{"-snapshot-interval", "0s"}, want: "-snapshot-interval"},
		"bad memory limit":  {args: []string{"-memory-limit", "64 lots"}, want: "-memory-limit"},
		"bad GOMEMLIMIT":    {env: map[string]string{"GOMEMLIMIT": "64Mi"}, want: "GOMEMLIMIT"},
		"limit with redis":  {args: []string{"-store", "redis", "-memory-limit", "1GiB"}, want: "maxmemory"},
		"ttl with redis":    {args: []string{"-store", "redis", "-page-ttl", "24h"}, want: "-page-ttl"},
		"negative ttl":      {args: []string{"-page-ttl", "-1h"}, want: "-page-ttl"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	t.Run("memory limit", func(t *testing.T) {
		for _, tc := range []struct {
			args      []string
			env       map[string]string
			want      int64
			wantFrom  string
			wantError bool
		}{
			{want: 0},
			{args: []string{"-memory-limit", "64MiB"}, want: 64 << 20, wantFrom: "-memory-limit"},
			{args: []string{"-memory-limit", "2GB"}, want: 2e9, wantFrom: "-memory-limit"},
			{args: []string{"-memory-limit", "1000"}, want: 1000, wantFrom: "-memory-limit"},
			{env: map[string]string{"GOMEMLIMIT": "512MiB"}, want: 512 << 20, wantFrom: "GOMEMLIMIT"},
			{env: map[string]string{"GOMEMLIMIT": "off"}, want: 0},
			{env: map[string]string{"GOMEMLIMIT": "512MiB"}, args: []string{"-memory-limit", "1GiB"}, want: 1 << 30, wantFrom: "-memory-limit"},
			{env: map[string]string{"GOMEMLIMIT": "512MiB", "TRACKER_MEMORY_LIMIT": "256MiB"}, want: 256 << 20, wantFrom: "-memory-limit"},
			// GOMEMLIMIT is the whole process's: a default for the memory
			// store alone.
			{env: map[string]string{"GOMEMLIMIT": "512MiB"}, args: []string{"-data-dir", "d"}, want: 512 << 20, wantFrom: "GOMEMLIMIT"},
			{env: map[string]string{"GOMEMLIMIT": "512MiB"}, args: []string{"-store", "redis"}, want: 0},
		} {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil || c.memoryLimit != tc.want || c.memoryLimitFrom != tc.wantFrom {
				t.Errorf("args %q, env %v: %+v, %v; want a limit of %d from %q", tc.args, tc.env, c, err, tc.want, tc.wantFrom)
			}
		}
	})
	t.Run("bad log level fails run", func(t *testing.T) {
		err := run(context.Background(), []string{"-log-level", "loud"}, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "log-level") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestHelpAndVersion checks that -h lists every flag with its default and
// environment variable, and that -version prints one.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, name := range flagNames(t) {
		if !strings.Contains(help, "-"+name) {
			t.Errorf("-h does not list -%s", name)
		}
	}
	for _, want := range []string{"TRACKER_<NAME>", `(default ":8080")`, "(default 5s)"} {
		if !strings.Contains(help, want) {
			t.Errorf("-h does not show %q:\n%s", want, help)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"-version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "tracker ") || len(strings.TrimSpace(out.String())) <= len("tracker ") {
		t.Errorf("-version printed %q", out.String())
	}
}

// flagNames lists the flags parseConfig defines, read back from its usage.
func flagNames(t *testing.T) []string {
	t.Helper()
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var names []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(l, "  -") {
			names = append(names, strings.TrimPrefix(f[0], "-"))
		}
	}
	if len(names) < 15 {
		t.Fatalf("found only %d flags in the usage:\n%s", len(names), out.String())
	}
	return names
}

// TestOpenAPIMatchesRoutes checks every route against the OpenAPI document,
// both ways, so neither can drift from the other.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	spec := specOperations(t, string(api.OpenAPI))
	var have []string
	for _, rt := range routes(deps{metrics: metrics.New(func() metrics.StoreStats { return metrics.StoreStats{} })}) {
		have = append(have, strings.ToLower(rt.method)+" "+rt.path)
	}
	slices.Sort(have)
	if !slices.Equal(have, spec) {
		t.Errorf("routes %v\nOpenAPI %v", have, spec)
	}
	if !strings.HasPrefix(string(api.OpenAPI), "openapi: 3.1") {
		t.Error("the document is not OpenAPI 3.1")
	}
}

// specOperations reads "method path" pairs from the paths section of an
// OpenAPI YAML document written with two-space indentation.
func specOperations(t *testing.T, doc string) []string {
	t.Helper()
	var ops []string
	inPaths, path := false, ""
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case l == "paths:":
			inPaths = true
		case inPaths && l != "" && !strings.HasPrefix(l, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(l, "  /") && strings.HasSuffix(l, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(l), ":")
		case inPaths && len(l) > 4 && strings.HasPrefix(l, "    ") && l[4] != ' ' && strings.HasSuffix(l, ":"):
			m := strings.TrimSuffix(strings.TrimSpace(l), ":")
			if slices.Contains([]string{"get", "post", "put", "patch", "delete", "options", "head"}, m) {
				ops = append(ops, m+" "+path)
			}
		}
	}
	if len(ops) == 0 {
		t.Fatal("no operations found in the OpenAPI document")
	}
	slices.Sort(ops)
	return ops
}

// TestHeadAnswersAsGet: every GET of the OpenAPI document answers HEAD too,
// as it says, with the status and content type of the GET and no body.
func TestHeadAnswersAsGet(t *testing.T) {
	t.Parallel()
	tracker := start(t, nil)
	for _, op := range specOperations(t, string(api.OpenAPI)) {
		path, ok := strings.CutPrefix(op, "get ")
		if !ok {
			continue
		}
		get, getHeader, _ := tracker.do(t, "GET", path, "", "")
		head, headHeader, body := tracker.do(t, "HEAD", path, "", "")
		if head != get || headHeader.Get("Content-Type") != getHeader.Get("Content-Type") || body != "" {
			t.Errorf("HEAD %s: %d %q with a body of %d bytes; GET: %d %q", path,
				head, headHeader.Get("Content-Type"), len(body), get, getHeader.Get("Content-Type"))
		}
	}
}

// TestServerOwnAnswers: what the README says of the two answers Go's HTTP
// server gives itself: 431 for headers past -max-header-bytes, 400 for a
// request it cannot parse, plain text, the connection closed, and nothing
// counted.
func TestServerOwnAnswers(t *testing.T) {
	t.Parallel()
	tracker := start(t, nil, "-max-header-bytes", "1024")
	const page = "https://example.com/own-answers"
	event := `{"visitor_id":"v1","url":"` + page + `"}`
	post := func(extra string) string {
		return "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
			"Content-Length: " + strconv.Itoa(len(event)) + "\r\n\r\n" + event
	}
	for _, c := range []struct{ name, request, status string }{
		{"headers too large", post("X-Pad: " + strings.Repeat("a", 8<<10) + "\r\n"), "431"},
		{"a bad header line", post("no colon here\r\n"), "400"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(tracker.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, c.request); err != nil {
			t.Fatal(err)
		}
		answer, err := io.ReadAll(conn) // until the server closes
		conn.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !strings.HasPrefix(string(answer), "HTTP/1.1 "+c.status+" ") || !strings.Contains(string(answer), "text/plain") {
			t.Errorf("%s: answered %q, want a plain-text %s", c.name, answer, c.status)
		}
	}
	if status, _, body := tracker.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape(page), "", ""); status != http.StatusOK || !strings.Contains(body, `"visitors":0`) {
		t.Errorf("the page after both: %d %s, want 0 visitors", status, body)
	}
}
