package fakerequester

import (
	"net"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// pickState is what pick tells about the key of a request.
type pickState struct {
	key string // the state key
	n   int    // this request's number for the key, from 1
}

// pick chooses the behaviour of a request, counts the request for its key, and
// returns the largest expiry it may grant.
func (s *Server) pick(user, target, host string) (Behaviour, pickState, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, key := s.script.Default, ""
	for _, k := range [...]string{user, target, host} {
		if found, ok := s.script.Trunks[k]; ok && k != "" {
			b, key = found, k
			break
		}
	}
	if key == "" {
		key = defaultPrefix + user
		if user == "" {
			key = defaultPrefix + host
		}
	}
	st := s.keys[key]
	if st == nil {
		st = &keyState{}
		s.keys[key] = st
	}
	st.seen++
	maxExpires := b.Expires
	if maxExpires == 0 {
		maxExpires = s.script.DefaultExpires
	}
	if maxExpires == 0 {
		maxExpires = DefaultExpires
	}
	return b, pickState{key: key, n: st.seen}, maxExpires
}

// takeStale reports whether the key still owes a stale challenge, and uses it up.
func (s *Server) takeStale(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.keys[key]
	if st == nil || st.staleSent {
		return false
	}
	st.staleSent = true
	return true
}

// challenge answers a request under a challenge behaviour.
func (s *Server) challenge(req *requesterv2beta1.SendMessageRequest, b Behaviour, user string, maxExpires int32, key string) *sipmessagev2beta1.SIPMessage {
	msg := req.GetMessage()
	realm := b.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	algorithm := normAlgorithm(b.Algorithm)
	c, ok := credentials(msg, b.Proxy)
	if !ok {
		return s.auth.challenge(msg, realm, algorithm, b.Proxy, false)
	}
	if b.StaleOnce && s.takeStale(key) {
		return s.auth.challenge(msg, realm, algorithm, b.Proxy, true)
	}
	if why := s.auth.verify(c, req.GetMethod().String(), b.Username, b.Password, realm); why != "" {
		s.log.Info("credentials refused", "trunk", user, "reason", why)
		return s.auth.challenge(msg, realm, algorithm, b.Proxy, false)
	}
	return okAnswer(msg, user, maxExpires)
}

func (s *Server) enter(key string) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	s.inFlight[key]++
	s.maxFlight = max(s.maxFlight, s.inFlight[key])
}

func (s *Server) leave(key string) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if s.inFlight[key]--; s.inFlight[key] == 0 {
		delete(s.inFlight, key)
	}
}

// arrive counts a call as it arrives, numbers it, keeps it among the arrivals (unless
// NoRecord) and wakes the waiters. Numbering and keeping happen under one lock, so
// Arrivals is always in Seq order.
func (s *Server) arrive(r Recorded) Recorded {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	r.Seq = s.count.Add(1)
	if s.opts.NoRecord {
		return r
	}
	s.arrivals = append(s.arrivals, r)
	close(s.changed)
	s.changed = make(chan struct{})
	return r
}

// record keeps an answered call r in memory (unless NoRecord) and in RecordFile (if
// any), updates its arrival, and wakes the waiters.
func (s *Server) record(r Recorded) {
	if s.recFile != nil {
		if err := s.recFile.write(r); err != nil {
			s.log.Warn("write record file", "err", err)
		}
	}
	if s.opts.NoRecord {
		return
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	s.records = append(s.records, r)
	// Arrivals hold every call in Seq order from 1, without gaps: r is at Seq-1.
	if i := int(r.Seq - 1); i >= 0 && i < len(s.arrivals) && s.arrivals[i].Seq == r.Seq {
		s.arrivals[i] = r
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// targetHost is the host part of a "host:port" target.
func targetHost(target string) string {
	if h, _, err := net.SplitHostPort(target); err == nil {
		return h
	}
	return target
}
