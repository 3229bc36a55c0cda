package sipmsg

import (
	"sync"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// Pooled is a request built by BuildPooled: the same request BuildChecked builds, in a
// block taken from a pool and given back by Release. A REGISTER goes out at every
// refresh of every binding, and its block (its two dozen messages) is most of the bytes
// a refresh allocates; the pool lets one block serve exchange after exchange.
//
// The request is valid until Release. Release clears every message of the block (a
// request kept past it reads as empty, and under the race detector a read racing with
// Release is reported), then the block serves another request. Whoever must keep the
// request longer keeps a copy (proto.Clone): the strings are never reused, only the
// messages, so a clone stays intact.
type Pooled struct {
	b    block
	held bool // between BuildPooled and Release
}

var pool = sync.Pool{New: func() any { return new(Pooled) }}

// BuildPooled is BuildChecked in a block from the pool: the same request, the same
// errors. Give the block back with Release once nothing holds the request.
func BuildPooled(r Register) (*Pooled, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	p := pool.Get().(*Pooled)
	p.held = true
	p.b.fill(r)
	if r.Auth != nil || p.b.check() != nil {
		if err := Check(&p.b.req); err != nil {
			p.Release()
			return nil, err
		}
	}
	return p, nil
}

// Request is the request, valid until Release.
func (p *Pooled) Request() *requesterv2beta1.SendMessageRequest {
	if !p.held {
		panic("sipmsg: Request of a released Pooled")
	}
	return &p.b.req
}

// Release clears the request and gives its block back to the pool. Nothing may hold
// the request any more (see Pooled); releasing twice panics.
func (p *Pooled) Release() {
	if !p.held {
		panic("sipmsg: Pooled released twice")
	}
	// Cleared here rather than at the next BuildPooled: the pool then holds no string,
	// digest answer or extension of a past request, and fill starts from zero, as it
	// does for a new block.
	p.b = block{}
	p.held = false
	pool.Put(p)
}
