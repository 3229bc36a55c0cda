package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/tools/bench"
	"sipreg.dev/tools/fakeapi"
)

// How the several-replicas scenario reads the replicas: ownership from the control
// API's ListRegistrations (every page), takeovers and leases from /metrics.
const (
	// listPageSize is the page size of ListRegistrations (its largest).
	listPageSize = 1000
	// listTimeout bounds one ListRegistrations call.
	listTimeout = 2 * time.Minute
	// metricsTimeout bounds one scrape of /metrics.
	metricsTimeout = 10 * time.Second
)

// The replicas' Prometheus series the scenario reads (see the registry's metrics
// package, WatchCluster).
const (
	metricOwned         = "sipreg_cluster_trunks_owned"
	metricTakeovers     = "sipreg_cluster_takeovers_total"
	metricHandOvers     = "sipreg_cluster_handovers_total"
	metricRenewFailures = "sipreg_cluster_lease_renewal_failures_total"
)

// replicaMetrics is one scrape of a replica's cluster series; OK is false when the
// replica could not be scraped (killed) or lacked a series, and Err says why.
type replicaMetrics struct {
	OK                                       bool
	Err                                      string
	Owned, Takeovers, HandOvers, RenewFailed int64
}

// freeAddr returns a loopback host:port that was free a moment ago, for a replica's
// listeners: the bench knows where the control API and /metrics are without reading
// the registry's log. Another process may take the port in between; the replica then
// fails to start, and the scenario says so.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// listAll returns every registration one replica's control API lists, following the
// pages.
func listAll(ctx context.Context, control string) ([]*registryv1.Registration, error) {
	client := registryv1connect.NewRegistrationServiceClient(&http.Client{Timeout: listTimeout}, "http://"+control)
	var out []*registryv1.Registration
	token := ""
	for {
		resp, err := client.ListRegistrations(ctx, connect.NewRequest(&registryv1.ListRegistrationsRequest{
			PageSize: listPageSize, PageToken: token}))
		if err != nil {
			return out, err
		}
		out = append(out, resp.Msg.GetRegistrations()...)
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// listing is what one full ListRegistrations says about ownership.
type listing struct {
	owners map[string]string // trunk ref -> owner ("" when none)
	owned  map[string]int    // owner -> trunks
	agree  int               // REGISTERED, with an owner and the expected AOR user
}

// readListing sums up a listing; users gives each trunk's expected AOR user.
func readListing(regs []*registryv1.Registration, users map[string]string) listing {
	l := listing{owners: make(map[string]string, len(regs)), owned: map[string]int{}}
	for _, r := range regs {
		l.owners[r.GetTrunkRef()] = r.GetOwner()
		l.owned[r.GetOwner()]++
		if r.GetOwner() != "" && aorUser(r.GetAor()) == users[r.GetTrunkRef()] &&
			r.GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
			l.agree++
		}
	}
	return l
}

// scrapeAll reads the cluster series of every replica at the same time; a killed
// replica is not scraped.
func scrapeAll(ctx context.Context, reps []*replica) []replicaMetrics {
	out := make([]replicaMetrics, len(reps))
	var wg sync.WaitGroup
	for i, rp := range reps {
		if rp.killed {
			out[i].Err = "killed"
			continue
		}
		wg.Go(func() { out[i] = scrape(ctx, rp.metrics) })
	}
	wg.Wait()
	return out
}

// scrape reads one replica's cluster series from http://addr/metrics.
func scrape(ctx context.Context, addr string) replicaMetrics {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return replicaMetrics{Err: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return replicaMetrics{Err: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return replicaMetrics{Err: resp.Status}
	}
	series, err := parseMetrics(resp.Body)
	if err != nil {
		return replicaMetrics{Err: err.Error()}
	}
	return clusterMetrics(series)
}

// clusterMetrics picks the cluster series out of a scrape.
func clusterMetrics(series map[string]float64) replicaMetrics {
	m := replicaMetrics{OK: true}
	for name, dst := range map[string]*int64{metricOwned: &m.Owned, metricTakeovers: &m.Takeovers,
		metricHandOvers: &m.HandOvers, metricRenewFailures: &m.RenewFailed} {
		v, ok := series[name]
		if !ok {
			m.OK = false
			m.Err = "no " + name
			continue
		}
		*dst = int64(v)
	}
	return m
}

// parseMetrics reads Prometheus's text format into series (the name with its labels,
// as written) -> value; comments and timestamps are left out.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The series ends at the first space after the labels' closing brace.
		end := 0
		if i := strings.IndexByte(line, '{'); i >= 0 && i < strings.IndexByte(line+" ", ' ') {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics: unterminated labels in %q", line)
			}
			end = j + 1
		} else {
			end = strings.IndexByte(line, ' ')
		}
		if end <= 0 || end >= len(line) {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		fields := strings.Fields(line[end:])
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[line[:end]] = v
	}
	return out, sc.Err()
}

// trunkUsers returns the AOR user of each trunk the fake API generates, by ref: the
// URI's user, else the credentials' username (as the registry does).
func trunkUsers(n int) map[string]string {
	out := make(map[string]string, n)
	for _, t := range fakeapi.Generate(n) {
		u := ""
		if uris := t.GetUris(); len(uris) > 0 {
			u = uris[0].GetUser()
		}
		if u == "" {
			u = t.GetOutboundCredentials().GetUsername()
		}
		out[t.GetRef()] = u
	}
	return out
}

// stopReplicas stops every replica not killed, at the same time (SIGTERM, then
// SIGKILL after bench.StopGrace), and kills none twice; it returns the first error.
func stopReplicas(reps []*replica) error {
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, rp := range reps {
		if rp.killed {
			continue
		}
		wg.Go(func() {
			if err := rp.reg.Stop(bench.StopGrace); err != nil {
				errs[i] = fmt.Errorf("replica %s: %w", rp.id, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mostOwned returns the owner of the most trunks (the smallest ID on a tie; never the
// empty owner).
func mostOwned(owned map[string]int) string {
	best := ""
	for _, id := range slices.Sorted(maps.Keys(owned)) {
		if id != "" && (best == "" || owned[id] > owned[best]) {
			best = id
		}
	}
	return best
}

// aorUser returns the user part of an address-of-record ("sip:user@domain").
func aorUser(aor string) string {
	rest := aor
	if i := strings.IndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[:i], "@") {
		rest = rest[i+1:]
	}
	user, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return user
}
