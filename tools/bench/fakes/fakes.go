// Package fakes holds the bench's in-process stand-ins for what the registry talks to:
// the fake Routr API (fakeapi, serving N generated trunks, with FindByWatch noting
// when each FindBy arrives) and OKRequester, a Requester that answers every REGISTER
// at once with 200 OK and knows the moment the N-th distinct trunk is answered, which
// is when the bench's registration phase ends. With tracking, it also keeps each
// trunk's latest REGISTER (Call-ID, CSeq), for the several-replicas failover.
package fakes

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/bench/proc"
	"sipreg.dev/tools/fakeapi"
)

// GrantedExpires is the lifetime every 200 OK grants: long enough that no refresh falls
// due while a row runs (the registrant refreshes at 50-80 % of it).
const GrantedExpires = 600

// OKRequester is a Requester that answers every SendMessage at once with 200 OK, as
// fakerequester's default script does, and counts the distinct AOR users it has
// answered OK to, without keeping the requests. It stands in for fakerequester
// because the bench must know the moment the N-th distinct trunk is answered, and
// fakerequester with NoRecord counts calls only.
type OKRequester struct {
	requesterv2beta1.UnimplementedRequesterServer

	want     int64
	calls    atomic.Int64 // every SendMessage
	distinct atomic.Int64 // distinct AOR users answered OK with a lifetime > 0
	firstAt  atomic.Int64 // unix nanoseconds of the first call, 0 before
	lastAt   atomic.Int64 // unix nanoseconds of the latest call
	seen     sync.Map     // AOR user -> struct{}

	doneOnce sync.Once
	done     chan struct{} // closed when distinct reaches want
	doneAt   time.Time     // set before done is closed

	// With track, the latest REGISTER of every AOR user is kept (users), and the
	// first one of each watched user at or after the mark (see WatchFrom).
	track     bool
	users     sync.Map     // AOR user -> *SentRegister (track only)
	markNanos atomic.Int64 // unix nanoseconds of the mark, 0 before WatchFrom
	watchMu   sync.Mutex   // guards the fields below
	watch     map[string]*WatchEntry
	watchLeft int
	watchLast time.Time     // when the last watched user got its first REGISTER
	watchDone chan struct{} // closed when watchLeft reaches 0
}

// WatchEntry is a watched user's first REGISTER at or after the mark, and the one
// before it (nil when none came before).
type WatchEntry struct {
	Before, After *SentRegister
}

// SentRegister is one REGISTER as the Requester saw it.
type SentRegister struct {
	At     time.Time
	CallID string
	CSeq   int // -1 when the request had no readable CSeq extension
}

// NewOKRequester returns a Requester that is done once want distinct trunks are
// answered OK.
func NewOKRequester(want int) *OKRequester {
	return &OKRequester{want: int64(want), done: make(chan struct{})}
}

// NewTrackingRequester is NewOKRequester that also keeps, per AOR user, the latest
// REGISTER's time, Call-ID and CSeq, and can watch users for a REGISTER after a mark.
func NewTrackingRequester(want int) *OKRequester {
	q := NewOKRequester(want)
	q.track = true
	return q
}

// LastOf returns the latest REGISTER for user (track only).
func (q *OKRequester) LastOf(user string) (SentRegister, bool) {
	v, ok := q.users.Load(user)
	if !ok {
		return SentRegister{}, false
	}
	r := v.(*atomic.Pointer[SentRegister]).Load()
	return *r, true
}

// WatchFrom sets the mark at at and watches users: the returned channel is closed
// once each of them has received a REGISTER at or after at (at once for no users).
// It is called once (track only).
func (q *OKRequester) WatchFrom(users []string, at time.Time) <-chan struct{} {
	q.watchMu.Lock()
	defer q.watchMu.Unlock()
	q.watch = make(map[string]*WatchEntry, len(users))
	for _, u := range users {
		q.watch[u] = &WatchEntry{}
	}
	q.watchLeft = len(q.watch)
	q.watchDone = make(chan struct{})
	if q.watchLeft == 0 {
		q.watchLast = at
		close(q.watchDone)
	}
	q.markNanos.Store(at.UnixNano())
	return q.watchDone
}

// watched returns, for each watched user that got one, its first REGISTER at or
// after the mark with the one before it, and when the last of them arrived (zero
// until every one did).
func (q *OKRequester) Watched() (map[string]WatchEntry, time.Time) {
	q.watchMu.Lock()
	defer q.watchMu.Unlock()
	out := make(map[string]WatchEntry, len(q.watch))
	for u, e := range q.watch {
		if e.After != nil {
			out[u] = *e
		}
	}
	return out, q.watchLast
}

// record keeps one REGISTER (track only). A trunk has one REGISTER in flight at a
// time, so the one it replaces is the one before it.
func (q *OKRequester) record(user string, r *SentRegister) {
	v, ok := q.users.Load(user)
	if !ok {
		v, _ = q.users.LoadOrStore(user, new(atomic.Pointer[SentRegister]))
	}
	prev := v.(*atomic.Pointer[SentRegister]).Swap(r)
	mark := q.markNanos.Load()
	if mark == 0 || r.At.UnixNano() < mark {
		return
	}
	q.watchMu.Lock()
	defer q.watchMu.Unlock()
	if e, watched := q.watch[user]; watched && e.After == nil {
		e.Before, e.After = prev, r
		if q.watchLeft--; q.watchLeft == 0 {
			q.watchLast = r.At
			close(q.watchDone)
		}
	}
}

// parseCSeq reads "<n> REGISTER" (the CSeq extension's value); -1 when it is not.
func parseCSeq(v string) int {
	num, method, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(strings.TrimSpace(method), "REGISTER") {
		return -1
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// SendMessage answers 200 OK, granting min(asked, 600) seconds (600 when nothing was
// asked), with the Call-ID, From and To of the request, its CSeq echoed as an
// extension, and a Contact sip:<user>@127.0.0.1:5060 carrying the granted expiry.
func (q *OKRequester) SendMessage(_ context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	now := time.Now()
	q.calls.Add(1)
	q.firstAt.CompareAndSwap(0, now.UnixNano())
	q.lastAt.Store(now.UnixNano())

	msg := req.GetMessage()
	user := msg.GetTo().GetAddress().GetUri().GetUser()
	granted := int32(GrantedExpires)
	if e := msg.GetExpires(); e != nil && e.GetExpires() >= 0 && e.GetExpires() < granted {
		granted = e.GetExpires()
	}
	answer := &sipmessagev2beta1.SIPMessage{
		MessageType:  &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: sipmessagev2beta1.ResponseType_OK},
		ReasonPhrase: "OK",
		CallId:       msg.GetCallId(),
		From:         msg.GetFrom(),
		To:           msg.GetTo(),
		Contact: &sipmessagev2beta1.Contact{
			Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "127.0.0.1", Port: 5060}},
			Expires: granted,
		},
		Expires: &sipmessagev2beta1.Expires{Expires: granted},
	}
	cseq := ""
	for _, e := range msg.GetExtensions() {
		if strings.EqualFold(e.GetName(), "CSeq") {
			cseq = e.GetValue()
			answer.Extensions = []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: cseq}}
			break
		}
	}
	if q.track && user != "" {
		q.record(user, &SentRegister{At: now, CallID: msg.GetCallId().GetCallId(), CSeq: parseCSeq(cseq)})
	}
	if granted > 0 && user != "" {
		if _, loaded := q.seen.LoadOrStore(user, struct{}{}); !loaded {
			if q.distinct.Add(1) == q.want {
				q.doneOnce.Do(func() {
					q.doneAt = time.Now()
					close(q.done)
				})
			}
		}
	}
	return &requesterv2beta1.SendMessageResponse{Message: answer}, nil
}

// First returns when the first call arrived (zero before any).
func (q *OKRequester) First() time.Time { return unixNano(q.firstAt.Load()) }

// Calls returns how many SendMessage calls arrived.
func (q *OKRequester) Calls() int64 { return q.calls.Load() }

// Distinct returns how many distinct AOR users were answered OK with a lifetime > 0.
func (q *OKRequester) Distinct() int64 { return q.distinct.Load() }

// Done returns a channel closed when every wanted trunk has been answered OK.
func (q *OKRequester) Done() <-chan struct{} { return q.done }

// DoneAt returns when the last wanted trunk was answered OK (once Done is closed).
func (q *OKRequester) DoneAt() time.Time { return q.doneAt }

// Last returns when the latest call arrived (zero before any).
func (q *OKRequester) Last() time.Time { return unixNano(q.lastAt.Load()) }

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// FindByWatch is fakeapi's FindByLog writer: it notes when each FindBy arrived and
// wakes whoever waits for one. fakeapi writes one line per call, under its own lock.
type FindByWatch struct {
	onFirst func(time.Time) // called once, in the writer, at the first call

	mu      sync.Mutex
	times   []time.Time
	changed chan struct{} // closed and replaced on every call
}

func NewFindByWatch(onFirst func(time.Time)) *FindByWatch {
	return &FindByWatch{onFirst: onFirst, changed: make(chan struct{})}
}

// Write records one FindBy call.
func (w *FindByWatch) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	w.times = append(w.times, now)
	first := len(w.times) == 1
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	if first && w.onFirst != nil {
		w.onFirst(now)
	}
	return len(p), nil
}

// count returns how many FindBy calls arrived.
func (w *FindByWatch) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times)
}

// waitAfter waits for a FindBy call that arrives after t and returns its time.
func (w *FindByWatch) waitAfter(ctx context.Context, t time.Time, exited <-chan struct{}) (time.Time, error) {
	for {
		w.mu.Lock()
		for _, at := range w.times {
			if at.After(t) {
				w.mu.Unlock()
				return at, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-exited:
			return time.Time{}, proc.ErrExited
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// Serve serves n generated trunks (FindBy calls logged to watch) and req on
// loopback; stop ends both and waits for them.
func Serve(n int, watch io.Writer, req requesterv2beta1.RequesterServer) (apiAddr, reqAddr string, stop func(), err error) {
	api := fakeapi.New(fakeapi.Options{Generate: n, FindByLog: watch})
	apiLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, fmt.Errorf("fake api: %w", err)
	}
	reqLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		apiLis.Close()
		return "", "", nil, fmt.Errorf("requester: %w", err)
	}
	// A pool of stream workers instead of a goroutine per call: the fakes share the
	// machine with the registry they measure, so they should take as little of it as
	// they can.
	reqSrv := grpc.NewServer(grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
	requesterv2beta1.RegisterRequesterServer(reqSrv, req)
	var serving sync.WaitGroup
	serving.Go(func() { _ = api.Serve(apiLis) })
	serving.Go(func() { _ = reqSrv.Serve(reqLis) })
	return apiLis.Addr().String(), reqLis.Addr().String(), func() {
		reqSrv.Stop()
		api.Stop()
		serving.Wait()
	}, nil
}
