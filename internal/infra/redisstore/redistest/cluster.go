package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster started for a test: three masters and a
// replica of each, every node a redis-server on loopback, stopped when the
// test ends.
type Cluster struct {
	Nodes []*Server // in the order they were started; roles change on failover
	tb    testing.TB
}

// NodeTimeout is the nodes' cluster-node-timeout: how long a master may be
// unreachable before its replica is promoted.
const NodeTimeout = time.Second

// StartCluster starts six nodes and joins them with redis-cli --cluster
// create, three masters sharing the 16,384 slots and a replica of each, and
// waits until every node serves every slot. extra are more configuration
// arguments of every node (as for Start).
func StartCluster(tb testing.TB, extra ...string) *Cluster {
	tb.Helper()
	cli := lookPath(tb, "redis-cli")
	c := &Cluster{tb: tb}
	for range 6 {
		// Each node has a bus port of its own (its default, port+10000, may
		// be past 65535 or taken).
		args := append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout / time.Millisecond)),
			// A replica takes over however long it was cut off from its
			// master: the tests' failovers are quick, not a partition.
			"--cluster-replica-validity-factor", "0",
			"--appendfsync", "everysec",
		}, extra...)
		c.Nodes = append(c.Nodes, startServer(tb, true, args))
	}
	create := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		create = append(create, n.Addr)
	}
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	c.WaitReady()
	return c
}

// URL is the cluster as a -redis-url: one node, and the others as addr=.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// Masters are the nodes that are masters now, with their replicas in sync.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		if role, _ := n.Info("replication", "role"); role == "master" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaOf returns the node that replicates master, or nil.
func (c *Cluster) ReplicaOf(master *Server) *Server {
	_, port, _ := net.SplitHostPort(master.Addr)
	for _, n := range c.Nodes {
		if n == master || n.cmd == nil {
			continue
		}
		if p, _ := n.Info("replication", "master_port"); p == port {
			return n
		}
	}
	return nil
}

// MasterOf returns the master serving key now.
func (c *Cluster) MasterOf(key string) *Server {
	c.tb.Helper()
	slot, err := c.Nodes[0].Int("CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.tb.Fatal(err)
	}
	for _, m := range c.Masters() {
		owns, err := m.Slots()
		if err != nil {
			c.tb.Fatal(err)
		}
		if owns[int(slot)] {
			return m
		}
	}
	c.tb.Fatalf("no master serves slot %d of %q", slot, key)
	return nil
}

// WaitReady waits until every running node says the cluster is ok, three
// masters own all the slots, and each has a replica in sync.
func (c *Cluster) WaitReady() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("the cluster is not ready after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ready() error {
	for _, n := range c.Nodes {
		if n.cmd == nil {
			return fmt.Errorf("%s is down", n.Addr)
		}
		info, err := n.Do("CLUSTER", "INFO")
		if state := field(info, "cluster_state"); err != nil || state != "ok" {
			return fmt.Errorf("%s: cluster_state %q, %v", n.Addr, state, err)
		}
	}
	masters := c.Masters()
	if len(masters) != 3 {
		return fmt.Errorf("%d masters, want 3", len(masters))
	}
	slots := 0
	for _, m := range masters {
		owns, err := m.Slots()
		if err != nil {
			return err
		}
		slots += len(owns)
		if r := c.ReplicaOf(m); r == nil {
			return fmt.Errorf("master %s has no replica", m.Addr)
		} else if link, _ := r.Info("replication", "master_link_status"); link != "up" {
			return fmt.Errorf("replica %s of %s: link %q", r.Addr, m.Addr, link)
		}
	}
	if slots != 16384 {
		return fmt.Errorf("the masters own %d slots, want 16384", slots)
	}
	return nil
}

// Failover kills master as a crash would, waits until its replica has taken
// over its slots, starts it again (it comes back as the replica of its old
// replica) and waits until the cluster is whole again. It returns the new
// master.
func (c *Cluster) Failover(master *Server) *Server {
	c.tb.Helper()
	replica := c.ReplicaOf(master)
	if replica == nil {
		c.tb.Fatalf("%s has no replica to fail over to", master.Addr)
	}
	master.Kill()
	c.WaitPromoted(replica)
	master.Restart()
	c.WaitReady()
	return replica
}

// WaitPromoted waits until replica is a master serving slots.
func (c *Cluster) WaitPromoted(replica *Server) {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if role, _ := replica.Info("replication", "role"); role == "master" {
			if owns, _ := replica.Slots(); len(owns) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("replica %s did not take over its master's slots in 30s", replica.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Spread is how evenly work fell on the masters: the busiest one's share
// of keys, and of commands, over the mean share (1 is perfectly even).
type Spread struct {
	Keys, Commands float64
	PerMaster      []string // keys/commands of each master
}

func (s Spread) String() string {
	return fmt.Sprintf("busiest master %.3f× the mean share of keys, %.3f× of commands (keys/commands per master: %s)",
		s.Keys, s.Commands, strings.Join(s.PerMaster, ", "))
}

// MeasureSpread runs fn on a cluster whose keys are all fn's, and measures
// the spread of keys (DBSIZE) and of the commands fn sent (INFO
// commandstats, less the commands of administration) over the masters.
func MeasureSpread(tb testing.TB, c *Cluster, fn func()) Spread {
	tb.Helper()
	masters := c.Masters()
	before := make([]int64, len(masters))
	for i, m := range masters {
		before[i] = dataCommands(tb, m)
	}
	fn()
	keys := make([]int64, len(masters))
	cmds := make([]int64, len(masters))
	var sp Spread
	for i, m := range masters {
		n, err := m.Int("DBSIZE")
		if err != nil {
			tb.Fatal(err)
		}
		keys[i], cmds[i] = n, dataCommands(tb, m)-before[i]
		sp.PerMaster = append(sp.PerMaster, fmt.Sprintf("%d/%d", keys[i], cmds[i]))
	}
	sp.Keys, sp.Commands = busiest(keys), busiest(cmds)
	return sp
}

// busiest is the largest of ns over their mean.
func busiest(ns []int64) float64 {
	var most, sum int64
	for _, n := range ns {
		most, sum = max(most, n), sum+n
	}
	if sum == 0 {
		return 0
	}
	return float64(most) * float64(len(ns)) / float64(sum)
}

// dataCommands is the number of commands a node has run, but those that
// administer it (INFO, PING, CLUSTER…) rather than read or write keys.
func dataCommands(tb testing.TB, n *Server) int64 {
	tb.Helper()
	stats, err := n.Do("INFO", "commandstats")
	if err != nil {
		tb.Fatal(err)
	}
	admin := map[string]bool{"info": true, "ping": true, "cluster": true, "command": true, "dbsize": true,
		"hello": true, "client": true, "readonly": true, "keys": true, "select": true, "config": true}
	var total int64
	for line := range strings.SplitSeq(stats, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || admin[strings.SplitN(name, "|", 2)[0]] {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			tb.Fatalf("INFO commandstats: %q", line)
		}
		total += n
	}
	return total
}

// Info returns one field of a section of INFO ("" if absent).
func (s *Server) Info(section, name string) (string, error) {
	info, err := s.Do("INFO", section)
	return field(info, name), err
}

// field returns the value of a name:value line of an INFO-like reply.
func field(info, name string) string {
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return ""
}

// Slots returns the hash slots this node serves as a master, from CLUSTER
// NODES (its line, flagged myself).
func (s *Server) Slots() (map[int]bool, error) {
	nodes, err := s.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	owns := map[int]bool{}
	for line := range strings.SplitSeq(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") || !strings.Contains(f[2], "master") {
			continue
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being migrated
				continue
			}
			lo, hi, _ := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if hi == "" {
				b, err2 = a, nil
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES: slots %q", r)
			}
			for i := a; i <= b; i++ {
				owns[i] = true
			}
		}
	}
	return owns, nil
}
