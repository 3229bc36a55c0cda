package grpclite

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// block is what the reader keeps of one header block (an answer's headers, or its
// trailers): the four fields grpclite reads, each its first occurrence.
type block struct {
	streamID  uint32
	ended     bool // END_STREAM: trailers, or a trailers-only answer
	truncated bool // past the header list limit: the fields after it were dropped

	status, contentType, grpcStatus, grpcMessage string
	hasGRPCStatus                                bool
	hasContentType, hasGRPCMessage               bool
}

// headerDecoder decodes the header blocks of one connection with its HPACK decoder, as
// x/net's Framer does with ReadMetaHeaders set (the same checks, the same errors), but
// keeps only what grpclite reads: no frame, field slice or closure is allocated per
// block, and the emit function is bound once.
type headerDecoder struct {
	fr  *http2.Framer
	dec *hpack.Decoder
	b   block

	// The block being decoded.
	headersRemain, trailersRemain uint32 // header list budgets, as x/net counts them
	sawRegular                    bool
	invalid                       error // a field x/net refuses: the stream fails
	pseudoErr                     error // a pseudo-header x/net refuses: the stream fails
	seen                          uint8 // pseudo-headers seen (pseudoStatus, ...)
}

// Pseudo-headers, for the duplicate and mix checks.
const (
	pseudoStatus uint8 = 1 << iota
	pseudoMethod
	pseudoPath
	pseudoScheme
	pseudoAuthority
	pseudoProtocol
	pseudoRequest = pseudoMethod | pseudoPath | pseudoScheme | pseudoAuthority | pseudoProtocol
)

// The errors x/net's Framer gives for what it refuses in a header block.
var (
	errPseudoAfterRegular   = errors.New("pseudo header field after regular")
	errMixPseudoHeaderTypes = errors.New("mix of request and response pseudo headers")
)

func newHeaderDecoder(fr *http2.Framer) *headerDecoder {
	d := &headerDecoder{fr: fr, dec: hpack.NewDecoder(4096, nil)}
	d.dec.SetEmitFunc(d.emit)
	d.dec.SetMaxStringLength(maxHeaderList)
	return d
}

// read decodes the header block hf begins, reading its CONTINUATION frames from the
// framer (which checks that they follow, on the same stream). The block is valid until
// the next read. Errors are x/net's: a ConnectionError for what ends the connection (a
// block far past the limit, bad HPACK), a StreamError for a field or pseudo-header it
// refuses (that call fails, the connection goes on).
func (d *headerDecoder) read(hf *http2.HeadersFrame) (*block, error) {
	d.b = block{streamID: hf.StreamID, ended: hf.StreamEnded()}
	d.headersRemain, d.trailersRemain = maxHeaderList, maxHeaderList
	d.sawRegular, d.invalid, d.pseudoErr, d.seen = false, nil, nil, 0
	d.dec.SetEmitEnabled(true)
	frag, end := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		// As x/net: a fragment of more than twice the budget left is not parsed, and
		// nothing is after an invalid field.
		if int64(len(frag)) > 2*int64(d.headersRemain+d.trailersRemain) || d.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := d.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if end {
			break
		}
		f, err := d.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf, ok := f.(*http2.ContinuationFrame)
		if !ok { // the framer's frame order check makes this unreachable
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		frag, end = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := d.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if d.invalid != nil {
		return nil, http2.StreamError{StreamID: d.b.streamID, Code: http2.ErrCodeProtocol, Cause: d.invalid}
	}
	if err := d.pseudoErr; err != nil || d.seen&pseudoStatus != 0 && d.seen&pseudoRequest != 0 {
		if err == nil {
			err = errMixPseudoHeaderTypes
		}
		return nil, http2.StreamError{StreamID: d.b.streamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &d.b, nil
}

// emit checks one decoded field as x/net does and keeps it if grpclite reads it.
func (d *headerDecoder) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		// Not the value in the error: it may be sensitive.
		d.invalid = fmt.Errorf("invalid header field value for %q", hf.Name)
	}
	pseudo := strings.HasPrefix(hf.Name, ":")
	if pseudo {
		if d.sawRegular {
			d.invalid = errPseudoAfterRegular
		}
	} else {
		d.sawRegular = true
		if !validWireHeaderFieldName(hf.Name) {
			d.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if d.invalid != nil {
		d.dec.SetEmitEnabled(false)
		return
	}
	remain, size := &d.headersRemain, hf.Size()
	if hf.Name == "trailer" {
		remain = &d.trailersRemain
		n := uint32(strings.Count(hf.Value, ",") + 1)
		size = uint32(len(hf.Value)) - n + 1 + n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		d.dec.SetEmitEnabled(false)
		d.b.truncated = true
		d.headersRemain, d.trailersRemain = 0, 0
		return
	}
	*remain -= size
	if pseudo {
		d.keepPseudo(hf)
		return
	}
	switch hf.Name {
	case "content-type":
		if !d.b.hasContentType {
			d.b.contentType, d.b.hasContentType = hf.Value, true
		}
	case "grpc-status":
		if !d.b.hasGRPCStatus {
			d.b.grpcStatus, d.b.hasGRPCStatus = hf.Value, true
		}
	case "grpc-message":
		if !d.b.hasGRPCMessage {
			d.b.grpcMessage, d.b.hasGRPCMessage = hf.Value, true
		}
	}
}

// keepPseudo notes a pseudo-header (x/net's checkPseudos, field by field: the first
// unknown or repeated one is the error) and keeps the first :status.
func (d *headerDecoder) keepPseudo(hf hpack.HeaderField) {
	var bit uint8
	switch hf.Name {
	case ":status":
		bit = pseudoStatus
	case ":method":
		bit = pseudoMethod
	case ":path":
		bit = pseudoPath
	case ":scheme":
		bit = pseudoScheme
	case ":authority":
		bit = pseudoAuthority
	case ":protocol":
		bit = pseudoProtocol
	default:
		if d.pseudoErr == nil {
			d.pseudoErr = fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		return
	}
	if d.seen&bit != 0 {
		if d.pseudoErr == nil {
			d.pseudoErr = fmt.Errorf("duplicate pseudo-header %q", hf.Name)
		}
		return
	}
	d.seen |= bit
	if bit == pseudoStatus {
		d.b.status = hf.Value
	}
}

// validWireHeaderFieldName is x/net's check of a field name as it arrives: a token,
// in lower case.
func validWireHeaderFieldName(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}
