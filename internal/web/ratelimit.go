package web

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ClientIPs finds the address of the client behind a request.
type ClientIPs struct {
	trusted []netip.Prefix
}

// NewClientIPs trusts X-Forwarded-For only from peers inside the trusted
// prefixes (the site's own proxies and load balancers).
func NewClientIPs(trusted []netip.Prefix) *ClientIPs {
	return &ClientIPs{trusted: trusted}
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or bare
// addresses (a bare address is a prefix of its full length).
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Of returns the client address of r: the direct peer, unless the peer is a
// trusted proxy, in which case X-Forwarded-For is walked from the right
// (the entry the nearest proxy added) past every trusted hop to the first
// address not trusted. Entries left of that are the client's own claims and
// are never believed.
func (c *ClientIPs) Of(r *http.Request) netip.Addr {
	peer := addrOf(r.RemoteAddr)
	if !c.isTrusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			var hop string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				hop, list = list[j+1:], list[:j]
			} else {
				hop, list = list, ""
			}
			a, err := parseHop(strings.TrimSpace(hop))
			if err != nil {
				return peer // a garbled chain: fall back on what we saw
			}
			a = a.Unmap()
			if !c.isTrusted(a) {
				return a
			}
			peer = a
		}
	}
	return peer
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with
// a port as some load balancers write it ("192.0.2.1:5555", "[2001:db8::1]:80").
func parseHop(hop string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(hop)
	return ap.Addr(), err
}

func (c *ClientIPs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func addrOf(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, _ := netip.ParseAddr(remote)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// RateLimiter is a token bucket per client address: each client may make
// Burst requests at once and Rate per second on average.
type RateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

// maxClients bounds the buckets kept. Past it, the limiter forgets every
// client at once (each starts again with a full burst) rather than grow
// without bound when many addresses come at once: it fails open, since its
// job is to keep one client from crowding out the others, not to refuse
// service.
const maxClients = 1 << 16

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter of rate requests per second with the given
// burst (at least 1). now is the clock, time.Now outside tests.
func NewRateLimiter(rate float64, burst int, now func() time.Time) *RateLimiter {
	return &RateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now,
		buckets: make(map[netip.Addr]*bucket)}
}

// Allow takes a token for client, or tells how long until one is there.
func (l *RateLimiter) Allow(client netip.Addr) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// An IPv6 client usually holds a whole /64: limit the /64, or it could
	// take a fresh bucket per address.
	if client.Is6() && !client.Is4In6() {
		client = netip.PrefixFrom(client, 64).Masked().Addr()
	}
	l.sweep(now)
	if len(l.buckets) >= maxClients {
		clear(l.buckets)
	}
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep forgets clients whose bucket has refilled, at most once a minute, so
// that the map holds only clients seen lately. A full bucket is the same as
// no bucket, so nothing is lost.
func (l *RateLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for a, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, a)
		}
	}
}

// Limit answers 429 with Retry-After to a client past its rate.
func Limit(l *RateLimiter, ips *ClientIPs) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ok, wait := l.Allow(ips.Of(r)); !ok {
				Error(w, r, &StatusError{Status: http.StatusTooManyRequests, Slug: "rate-limited",
					Detail: "too many requests from this client; retry later", RetryAfter: max(wait, time.Second)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
