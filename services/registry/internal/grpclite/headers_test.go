package grpclite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzHeaderDecoder holds headerDecoder to x/net's Framer with ReadMetaHeaders: the
// input, read as frames by both, gives the same frames and the same errors (a stream's,
// after which both go on, or the connection's), and for each header block the fields
// grpclite reads, each its first occurrence, END_STREAM and truncation.
func FuzzHeaderDecoder(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzAnswer", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		f.Add(corpusInput(f, file))
	}
	for _, seed := range headerSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ref := http2.NewFramer(io.Discard, bytes.NewReader(in))
		ref.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		ref.MaxHeaderListSize = maxHeaderList
		ref.SetMaxReadFrameSize(defaultFrame)
		own := http2.NewFramer(io.Discard, bytes.NewReader(in))
		own.SetMaxReadFrameSize(defaultFrame)
		hd := newHeaderDecoder(own)
		for i := 0; ; i++ {
			rf, rerr := ref.ReadFrame()
			of, oerr := own.ReadFrame()
			var b *block
			if hf, ok := of.(*http2.HeadersFrame); ok && oerr == nil {
				b, oerr = hd.read(hf)
			}
			if fmt.Sprint(rerr) != fmt.Sprint(oerr) {
				t.Fatalf("frame %d: x/net's error %v, grpclite's %v", i, rerr, oerr)
			}
			if rerr != nil {
				if se := (http2.StreamError{}); errors.As(rerr, &se) {
					continue
				}
				return
			}
			mh, meta := rf.(*http2.MetaHeadersFrame)
			if !meta {
				if b != nil || rf.Header().Type != of.Header().Type {
					t.Fatalf("frame %d: x/net read a %v, grpclite a %v", i, rf.Header().Type, of.Header().Type)
				}
				continue
			}
			if b == nil {
				t.Fatalf("frame %d: x/net decoded a header block, grpclite none", i)
			}
			if want := blockOf(mh); *b != want {
				t.Fatalf("frame %d: grpclite kept %+v, x/net's fields give %+v", i, *b, want)
			}
		}
	})
}

// blockOf is what grpclite should keep of a header block as x/net decodes it.
func blockOf(mh *http2.MetaHeadersFrame) block {
	b := block{streamID: mh.StreamID, ended: mh.StreamEnded(), truncated: mh.Truncated, status: mh.PseudoValue("status")}
	for _, hf := range mh.RegularFields() {
		switch hf.Name {
		case "content-type":
			if !b.hasContentType {
				b.contentType, b.hasContentType = hf.Value, true
			}
		case "grpc-status":
			if !b.hasGRPCStatus {
				b.grpcStatus, b.hasGRPCStatus = hf.Value, true
			}
		case "grpc-message":
			if !b.hasGRPCMessage {
				b.grpcMessage, b.hasGRPCMessage = hf.Value, true
			}
		}
	}
	return b
}

// headerSeeds are header blocks x/net takes and refuses, each followed by a good one
// (so that a stream's error is seen to leave the connection going).
func headerSeeds() [][]byte {
	f := func(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }
	good := []hpack.HeaderField{f(":status", "200"), f("content-type", "application/grpc")}
	trailers := []hpack.HeaderField{f("grpc-status", "5"), f("grpc-message", "not%20found"), f("grpc-message", "second")}
	big := strings.Repeat("v", maxHeaderList/2+1)
	cases := [][]hpack.HeaderField{
		good,
		trailers,
		{f(":status", "200"), f("content-type", "application/grpc"), f("grpc-status", "0"), f("grpc-message", "")},
		{f("content-type", "application/grpc"), f(":status", "200")},                    // pseudo after regular
		{f(":status", "200"), f("Content-Type", "application/grpc")},                    // upper case name
		{f(":status", "200"), f("x-bad", "a\x00b")},                                     // invalid value
		{f(":status", "200"), f(":status", "204")},                                      // duplicate pseudo
		{f(":status", "200"), f(":path", "/")},                                          // request and response
		{f(":foo", "x")},                                                                // unknown pseudo
		{f(":status", "200"), f("trailer", "grpc-status, grpc-message")},                // the trailer budget
		{f(":status", "200"), f("x-big", big), f("x-big2", big), f("grpc-status", "1")}, // past the list limit
	}
	var out [][]byte
	for i, fields := range cases {
		for _, split := range []int{0, 3} {
			var buf bytes.Buffer
			fr := http2.NewFramer(&buf, nil)
			writeBlock(fr, 1, i%2 == 1, fields, split)
			writeBlock(fr, 3, false, good, 0)
			out = append(out, buf.Bytes())
		}
	}
	// A CONTINUATION of another stream, and a HEADERS where a CONTINUATION must come.
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encodeFields(good)[:2]})
	_ = fr.WriteContinuation(3, true, encodeFields(good)[2:])
	out = append(out, buf.Bytes())
	return out
}

// encodeFields is fields as one HPACK block (a fresh encoder's).
func encodeFields(fields []hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, hf := range fields {
		_ = enc.WriteField(hf)
	}
	return buf.Bytes()
}

// writeBlock writes fields on stream id as a HEADERS frame, its block cut into
// CONTINUATION frames of split bytes (0: one frame as long as the frame size allows).
func writeBlock(fr *http2.Framer, id uint32, endStream bool, fields []hpack.HeaderField, split int) {
	block := encodeFields(fields)
	if split <= 0 {
		split = defaultFrame
	}
	first := block[:min(split, len(block))]
	rest := block[len(first):]
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0})
	for len(rest) > 0 {
		n := min(split, len(rest))
		_ = fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
}
