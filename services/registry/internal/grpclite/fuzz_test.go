package grpclite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawAnswer keeps the bytes of the message it is given.
type rawAnswer struct {
	calls int
	b     []byte
}

func (r *rawAnswer) Unmarshal(b []byte) error {
	r.calls++
	r.b = append(r.b[:0], b...)
	return nil
}

// ownCodes are the codes the client gives of its own (the others come from a grpc-status).
var ownCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal,
	codes.ResourceExhausted, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.Unknown}

// FuzzAnswer sends the input, as raw frames, as the answer of the first call of a
// connection, then closes it: the call must end, with the message or a status error.
func FuzzAnswer(f *testing.F) {
	f.Fuzz(func(t *testing.T, answer []byte) {
		got, err := rawCall(t, answer, false)
		data, statuses := parseAnswer(answer)
		if err == nil {
			if want := grpcMessage(0, got.b); got.calls != 1 || !bytes.Equal(data, want) {
				t.Fatalf("success with message %x (%d unmarshals), but stream 1's DATA is %x", got.b, got.calls, data)
			}
			return
		}
		st, ok := status.FromError(err)
		var ce *callError
		if !ok || !errors.As(err, &ce) || st.Code() == codes.OK {
			t.Fatalf("error %v (%T) is not a status of the client", err, err)
		}
		if got.calls != 0 {
			t.Fatalf("error %v after the message was unmarshalled", err)
		}
		if !slicesContains(ownCodes, st.Code()) && !statuses[strconv.Itoa(int(st.Code()))] {
			t.Fatalf("error %v: a code neither the client's nor in a grpc-status (%v)", err, statuses)
		}
	})
}

// rawCall makes a call on a connection whose server answers answer, then closes the
// connection, or (hold) leaves it open.
func rawCall(t *testing.T, answer []byte, hold bool) (rawAnswer, error) {
	srv, cli := net.Pipe()
	var dialled atomic.Bool
	c := New("fuzz", Options{Timeout: 50 * time.Millisecond, DialTimeout: 5 * time.Second, MaxRecvSize: 1 << 10,
		Dial: func(context.Context, string) (net.Conn, error) {
			if dialled.Swap(true) {
				return nil, errors.New("one connection only")
			}
			return cli, nil
		}})
	var served sync.WaitGroup
	served.Go(func() { serveRaw(srv, answer, hold) })
	var got rawAnswer
	errc := make(chan error, 1)
	go func() { errc <- sendMessage(c).Call(context.Background(), request("fuzz"), &got) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end")
	}
	_ = c.Close()
	served.Wait()
	return got, err
}

// serveRaw does the server's side of the handshake on nc, waits for the client's
// request, writes answer and closes nc (or, hold, waits for the client to close it).
func serveRaw(nc net.Conn, answer []byte, hold bool) {
	defer nc.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, preface); err != nil {
		return
	}
	fr := http2.NewFramer(nc, nc)
	requested := make(chan struct{})
	var once sync.Once
	var reading sync.WaitGroup
	reading.Go(func() { // to the end: the client's writes never wait for this side
		defer once.Do(func() { close(requested) })
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if t := f.Header().Type; (t == http2.FrameData || t == http2.FrameHeaders) && f.Header().Flags.Has(http2.FlagDataEndStream) {
				once.Do(func() { close(requested) })
			}
		}
	})
	if fr.WriteSettings() == nil {
		<-requested
		_, _ = nc.Write(answer)
	}
	if !hold {
		_ = nc.Close()
	}
	reading.Wait()
}

// parseAnswer reads answer as the client does: stream 1's DATA up to its trailers,
// and every grpc-status value.
func parseAnswer(answer []byte) (data []byte, statuses map[string]bool) {
	statuses = map[string]bool{}
	fr := http2.NewFramer(io.Discard, bytes.NewReader(answer))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = maxHeaderList
	fr.SetMaxReadFrameSize(defaultFrame)
	ended := false
	for {
		f, err := fr.ReadFrame()
		var se http2.StreamError
		switch {
		case errors.As(err, &se) && se.StreamID != 0:
			continue
		case err != nil:
			return data, statuses
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if f.StreamID == 1 && !ended {
				data = append(data, f.Data()...)
			}
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				if hf.Name == "grpc-status" {
					statuses[hf.Value] = true
				}
			}
			if f.StreamID == 1 && f.StreamEnded() {
				ended = true
			}
		}
	}
}

// TestFuzzSeeds checks what each seed of FuzzAnswer gives, so that the seeds (and the
// harness) are known to reach what they are named after. The server holds the
// connection: the answers end the calls, not the end of the connection.
func TestFuzzSeeds(t *testing.T) {
	for name, want := range map[string]codes.Code{
		"good": codes.OK, "control-and-split": codes.OK, "trailers-only": codes.NotFound,
		"truncated": codes.DeadlineExceeded, "bad-hpack": codes.Unavailable, "push-promise": codes.Internal,
		"huge-length": codes.Unavailable, "goaway": codes.Unavailable, "rst-cancel": codes.Canceled,
		"over-max-recv": codes.ResourceExhausted, "http-503": codes.Unavailable,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := rawCall(t, corpusInput(t, filepath.Join("testdata", "fuzz", "FuzzAnswer", name)), true)
			if status.Code(err) != want {
				t.Fatalf("got %v, want %v", err, want)
			}
			var a answer
			if err == nil && (a.Unmarshal(got.b) != nil || a.GetMessage().GetReasonPhrase() == "") {
				t.Fatalf("the message %x does not decode", got.b)
			}
		})
	}
}

// corpusInput is the input of a corpus file of a fuzz test of one []byte.
func corpusInput(t testing.TB, path string) []byte {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	quoted, ok := strings.CutPrefix(strings.TrimSpace(string(file)), "go test fuzz v1\n[]byte(")
	input, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
	if !ok || err != nil {
		t.Fatalf("%s is not a corpus file: %v", path, err)
	}
	return []byte(input)
}
