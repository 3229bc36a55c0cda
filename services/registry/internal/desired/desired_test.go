package desired

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/upstream"
)

// api answers FindBy with raw bytes, or err; it counts the calls.
type api struct {
	raw   []byte
	err   error
	calls int
}

func (a *api) FindRegisteringRaw(context.Context) ([]byte, error) {
	a.calls++
	return a.raw, a.err
}

func mk(ref, host string) *trunksv2beta1.Trunk {
	return &trunksv2beta1.Trunk{Ref: ref, Name: "trunk " + ref, SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{{Host: host, Port: 5060, Transport: "UDP", User: "u", Enabled: true}}}
}

// answer encodes items one by one; raw items go in as they are.
func answer(t *testing.T, items []*trunksv2beta1.Trunk, raw ...[]byte) []byte {
	t.Helper()
	var out []byte
	var all [][]byte
	for _, it := range items {
		b, err := proto.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	for _, b := range append(all, raw...) {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	return out
}

func refs(set []Trunk) string {
	var out []string
	for _, d := range set {
		out = append(out, d.Trunk.Ref)
	}
	return strings.Join(out, ",")
}

// summingAPI is an api that sums its answers as upstream.API does: an answer whose sum
// is the known one is answered without its bytes.
type summingAPI struct {
	*api
	skipped int
}

func (s *summingAPI) FindRegisteringSum(ctx context.Context, known uint64) ([]byte, uint64, error) {
	raw, err := s.FindRegisteringRaw(ctx)
	if err != nil {
		return nil, 0, err
	}
	sum := xxhash.Sum64(raw)
	if known != 0 && known == sum {
		s.skipped++
		return nil, sum, nil
	}
	return raw, sum, nil
}

// TestSameAnswerIsNotParsedAgain: an answer byte for byte the one applied last is not
// ok (nothing to do); one fetched but not applied is parsed again; a new one is ok. An
// API that sums its answers (upstream.SummingTrunks) is asked to leave out the bytes of
// the answer applied last, and the outcome is the same.
func TestSameAnswerIsNotParsedAgain(t *testing.T) {
	for _, summing := range []bool{false, true} {
		t.Run(fmt.Sprintf("summing=%v", summing), func(t *testing.T) {
			a := &api{raw: answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example"), mk("t2", "b.example")})}
			var src upstream.Trunks = a
			sa := &summingAPI{api: a}
			if summing {
				src = sa
			}
			var seen []int
			s := New(Options{API: src, Observe: func(n int, err error) { seen = append(seen, n) }})
			set, ok := s.Fetch(context.Background())
			if !ok || refs(set) != "t1,t2" {
				t.Fatalf("first fetch: %q %v, want t1,t2 ok", refs(set), ok)
			}
			if _, ok := s.Fetch(context.Background()); !ok {
				t.Fatal("an answer fetched but never applied was not parsed again")
			}
			s.Applied()
			if _, ok := s.Fetch(context.Background()); ok {
				t.Fatal("the answer applied last was parsed again")
			}
			if last, known := s.Last(); !known || len(last) != 0 || s.Wanted("t1") {
				// One replica does not keep the set: the engine holds every wanted trunk.
				t.Fatalf("Last = %q %v, Wanted(t1) %v; want known, none kept", refs(last), known, s.Wanted("t1"))
			}
			a.raw = answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example")})
			if set, ok := s.Fetch(context.Background()); !ok || refs(set) != "t1" {
				t.Fatalf("a new answer: %q %v, want t1 ok", refs(set), ok)
			}
			if got := s.Discoveries(); got != 4 || a.calls != 4 {
				t.Fatalf("%d discoveries, %d calls, want 4", got, a.calls)
			}
			if len(seen) != 4 || seen[2] != 2 {
				t.Fatalf("observed trunks %v, want 4 calls, the unchanged one counting the 2 applied", seen)
			}
			if want := map[bool]int{false: 0, true: 1}[summing]; sa.skipped != want {
				t.Fatalf("%d answers left out by the API, want %d", sa.skipped, want)
			}
		})
	}
}

// TestAPIOutageLoggedOnce: a failing API is not ok, APIDown holds, one warning per
// outage and one line when it recovers.
func TestAPIOutageLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	a := &api{err: errors.New("unavailable")}
	s := New(Options{API: a, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	for range 3 {
		if _, ok := s.Fetch(context.Background()); ok {
			t.Fatal("ok with the API down")
		}
	}
	if !s.APIDown() {
		t.Fatal("APIDown false during the outage")
	}
	a.err, a.raw = nil, answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example")})
	if _, ok := s.Fetch(context.Background()); !ok || s.APIDown() {
		t.Fatalf("after recovery: ok %v, APIDown %v", ok, s.APIDown())
	}
	out := buf.String()
	if n := strings.Count(out, "trunk discovery failed"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "trunk discovery recovered") {
		t.Errorf("no recovery line:\n%s", out)
	}
}

// undecodable returns an encoded trunk with the given ref that proto cannot decode (its
// name is not UTF-8).
func undecodable(ref string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, ref)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, []byte{'a', 0xff, 'b'})
}

// TestUndecodableAndDuplicateItems: an item that cannot be decoded but whose ref can be
// read stays as a placeholder with the reason; duplicates and refless trunks are dropped.
func TestUndecodableAndDuplicateItems(t *testing.T) {
	bad := undecodable("t-bad")
	a := &api{raw: answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example"), mk("t1", "b.example"), mk("", "c.example")}, bad)}
	s := New(Options{API: a})
	set, ok := s.Fetch(context.Background())
	if !ok || refs(set) != "t1,t-bad" {
		t.Fatalf("set %q %v, want t1,t-bad", refs(set), ok)
	}
	if set[0].Err != nil || set[0].Trunk.URIs[0].Host != "a.example" {
		t.Errorf("t1: %v %+v, want the first of the duplicates, usable", set[0].Err, set[0].Trunk.URIs)
	}
	if err := set[1].Err; !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), "undecodable") {
		t.Errorf("t-bad: %v, want an undecodable trunk.ErrInvalid", err)
	}
}

// coord is a scripted cluster: leader or follower, with a published set.
type coord struct {
	leader    bool
	published []byte
	version   string
	fetches   int
}

func (c *coord) TryDiscovery(context.Context, time.Duration) (bool, error) { return c.leader, nil }

func (c *coord) PublishDesired(_ context.Context, blob []byte) error {
	c.published, c.version = blob, "v"+string(rune('0'+len(blob)%10))
	return nil
}

func (c *coord) FetchDesired(_ context.Context, have string) ([]byte, string, bool, error) {
	c.fetches++
	if c.published == nil {
		return nil, "", false, nil
	}
	return c.published, c.version, have != c.version, nil
}

// TestLeaderPublishesFollowerReads: the leader asks the API and publishes; a follower
// reads the published set, polls until it knows one, and keeps it while nothing changes.
func TestLeaderPublishesFollowerReads(t *testing.T) {
	c := &coord{}
	f := New(Options{Coord: c})
	if _, ok := f.Fetch(context.Background()); ok || !f.Polling() {
		t.Fatalf("a follower before any publication: ok %v, polling %v; want not ok, polling", ok, f.Polling())
	}
	lc := &coord{leader: true}
	a := &api{raw: answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example"), mk("t2", "b.example")})}
	l := New(Options{API: a, Coord: lc})
	if set, ok := l.Fetch(context.Background()); !ok || refs(set) != "t1,t2" || lc.published == nil {
		t.Fatalf("leader: %q %v, published %v", refs(set), ok, lc.published != nil)
	}
	c.published, c.version = lc.published, lc.version
	if set, ok := f.Fetch(context.Background()); !ok || refs(set) != "t1,t2" || f.Polling() {
		t.Fatalf("follower: %q %v, polling %v; want t1,t2 ok, not polling", refs(set), ok, f.Polling())
	}
	if set, ok := f.Fetch(context.Background()); !ok || refs(set) != "t1,t2" {
		t.Fatalf("follower, nothing new: %q %v, want the last set", refs(set), ok)
	}
	if !f.Wanted("t2") || f.Wanted("t3") {
		t.Errorf("Wanted(t2) %v, Wanted(t3) %v", f.Wanted("t2"), f.Wanted("t3"))
	}
	c.published = []byte{0xff, 0xff}
	c.version = "bad"
	if set, ok := f.Fetch(context.Background()); !ok || refs(set) != "t1,t2" {
		t.Fatalf("follower, unreadable set: %q %v, want the last set kept", refs(set), ok)
	}
}

// TestFollowerReadsUndecodableLikeLeader: the leader publishes the answer as the API
// gave it, one undecodable item included, and a follower reads the same set from it:
// the same trunks, the undecodable one rejected with the reason on both (a follower
// must not treat it as gone and unregister it).
func TestFollowerReadsUndecodableLikeLeader(t *testing.T) {
	bad := undecodable("t-bad")
	raw := answer(t, []*trunksv2beta1.Trunk{mk("t1", "a.example"), mk("t2", "b.example")}, bad)
	lc := &coord{leader: true}
	l := New(Options{API: &api{raw: raw}, Coord: lc})
	lset, ok := l.Fetch(context.Background())
	if !ok || !bytes.Equal(lc.published, raw) {
		t.Fatalf("leader: ok %v, published the answer as given %v", ok, bytes.Equal(lc.published, raw))
	}
	f := New(Options{Coord: &coord{published: lc.published, version: lc.version}})
	fset, ok := f.Fetch(context.Background())
	if !ok || refs(fset) != refs(lset) || refs(fset) != "t1,t2,t-bad" {
		t.Fatalf("follower %q, leader %q; want both t1,t2,t-bad", refs(fset), refs(lset))
	}
	for i := range fset {
		if (fset[i].Err == nil) != (lset[i].Err == nil) {
			t.Errorf("%s: follower err %v, leader err %v", fset[i].Trunk.Ref, fset[i].Err, lset[i].Err)
		}
	}
	if err := fset[2].Err; !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), "undecodable") {
		t.Errorf("follower t-bad: %v, want an undecodable trunk.ErrInvalid", err)
	}
}
