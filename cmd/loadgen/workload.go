package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// workload is a kind of traffic sent to a server.
type workload int

const (
	// workloadIngestUniform posts events of random visitors on random pages.
	workloadIngestUniform workload = iota
	// workloadIngestHot posts half of its events on one hot page.
	workloadIngestHot
	// workloadQuery asks the visitors of random pages.
	workloadQuery
	// workloadUnique posts a (page, visitor) pair never sent before with
	// every event, spread round-robin over the pages, so that the count of
	// each page is known exactly.
	workloadUnique
	// workloadIngestTimed is workloadIngestUniform with a "time" in every
	// event, at a random hour of the last 30 days.
	workloadIngestTimed
)

// workloadNames lists the workloads by name, in the order of their values.
func workloadNames() []string {
	return []string{"ingest-uniform", "ingest-hot", "query", "unique", "ingest-timed"}
}

// String returns the workload's name as given on the command line.
func (w workload) String() string { return workloadNames()[w] }

// wantStatus is the only status that counts as a success for the workload.
func (w workload) wantStatus() int {
	if w == workloadQuery {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// workloadList is the value of -workloads: names separated by commas.
type workloadList []workload

// String returns the list as given on the command line.
func (l *workloadList) String() string {
	names := make([]string, len(*l))
	for i, w := range *l {
		names[i] = w.String()
	}
	return strings.Join(names, ",")
}

// Set replaces the list; an empty value runs no workload, for a run that
// only measures memory.
func (l *workloadList) Set(s string) error {
	*l = nil
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := -1
		for j, n := range workloadNames() {
			if n == name {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("unknown workload %q (known: %s)", name, strings.Join(workloadNames(), ", "))
		}
		*l = append(*l, workload(i))
	}
	return nil
}

// Page URLs: the throughput workloads use /p/<n>, the memory run /mem/<n>,
// so that the pages the memory run checks hold its pairs only.
const (
	pageOrigin    = "https://example.com"
	pagePath      = "/p/"
	memoryPath    = "/mem/"
	trackedSuffix = "?utm_source=x"
)

// generator writes one connection's requests of a workload into a reused
// buffer, without allocating: the client must cost the servers' CPU as
// little as it can.
type generator struct {
	workload workload
	rng      *rand.Rand
	pages    int64
	visitors int
	path     string // pagePath or memoryPath

	ingestHead []byte   // request line and headers up to the Content-Length value
	queryHead  []byte   // request line up to the page number
	queryTail  []byte   // the rest of the request after the page number
	body       []byte   // the JSON body being built
	times      []string // for workloadIngestTimed: RFC 3339 times to choose from

	// The unique workload sends pairs next, next+stride, ... below limit
	// (no limit if 0); base keeps the pairs of different phases apart.
	next, stride, limit, base int64
}

// newGenerator returns the generator of one connection. seed and stream make
// its random choices; the unique workload gives connection index of n the
// pairs index, index+n, index+2n, ...
func newGenerator(w workload, host string, pages, visitors int, path string, seed, stream uint64, index, n int) *generator {
	return &generator{
		workload: w,
		rng:      rand.New(rand.NewPCG(seed, stream)),
		pages:    int64(pages),
		visitors: visitors,
		path:     path,
		ingestHead: []byte("POST /api/v1/events HTTP/1.1\r\nHost: " + host +
			"\r\nContent-Type: application/json\r\nContent-Length: "),
		queryHead: []byte("GET /api/v1/visitors?url=" + url.QueryEscape(pageOrigin+path)),
		queryTail: []byte(" HTTP/1.1\r\nHost: " + host + "\r\n\r\n"),
		body:      make([]byte, 0, 256),
		times:     timesOf(w),
		next:      int64(index),
		stride:    int64(n),
	}
}

// timesOf returns the event times workload w draws from: every hour of the
// last 30 days for workloadIngestTimed, none for the others.
func timesOf(w workload) []string {
	if w != workloadIngestTimed {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Hour)
	times := make([]string, 30*24)
	for i := range times {
		times[i] = now.Add(-time.Duration(i) * time.Hour).Format(time.RFC3339)
	}
	return times
}

// appendRequest appends the next request to dst. It reports false when a
// limited unique workload has sent all its pairs.
func (g *generator) appendRequest(dst []byte) ([]byte, bool) {
	if g.workload == workloadQuery {
		dst = append(dst, g.queryHead...)
		dst = strconv.AppendInt(dst, g.rng.Int64N(g.pages), 10)
		return append(dst, g.queryTail...), true
	}
	var page, visitor int64
	r := g.rng.Uint64()
	switch g.workload {
	case workloadIngestUniform, workloadIngestTimed:
		page, visitor = g.rng.Int64N(g.pages), g.rng.Int64N(int64(g.visitors))
	case workloadIngestHot:
		visitor = g.rng.Int64N(int64(g.visitors))
		if r&2 == 0 {
			page = g.rng.Int64N(g.pages)
		}
	case workloadUnique:
		if g.limit > 0 && g.next >= g.limit {
			return dst, false
		}
		page, visitor = g.next%g.pages, g.base+g.next
		g.next += g.stride
	}
	b := append(g.body[:0], `{"visitor_id":"v`...)
	b = strconv.AppendInt(b, visitor, 10)
	b = append(b, `","url":"`+pageOrigin...)
	b = append(b, g.path...)
	b = strconv.AppendInt(b, page, 10)
	// Half the events carry a tracking parameter that the tracker strips,
	// so that canonicalization does its real work.
	if r&1 == 0 {
		b = append(b, trackedSuffix...)
	}
	if g.times != nil {
		b = append(b, `","time":"`...)
		b = append(b, g.times[g.rng.IntN(len(g.times))]...)
	}
	b = append(b, `"}`...)
	g.body = b

	dst = append(dst, g.ingestHead...)
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, b...), true
}
