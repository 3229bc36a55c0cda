package fakerequester

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// recordLine is one line of a record file (see the package doc).
type recordLine struct {
	At       time.Time       `json:"at"`
	Seq      int64           `json:"seq,omitempty"`
	Local    string          `json:"local,omitempty"`
	Trace    string          `json:"traceparent,omitempty"`
	Key      string          `json:"key"`
	Request  json.RawMessage `json:"request"`
	Response json.RawMessage `json:"response,omitempty"`
	Error    string          `json:"error,omitempty"`
	Code     string          `json:"code,omitempty"`
}

// recordFile appends records to a file, one JSON line each, one write per line so
// that a reader in another process never sees half a line.
type recordFile struct {
	mu sync.Mutex
	f  *os.File
}

func openRecordFile(path string) (*recordFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("record file: %w", err)
	}
	return &recordFile{f: f}, nil
}

func (rf *recordFile) write(r Recorded) error {
	line, err := marshalRecord(r)
	if err != nil {
		return err
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.f == nil {
		return errors.New("record file closed")
	}
	_, err = rf.f.Write(line)
	return err
}

// close closes the file; later calls do nothing.
func (rf *recordFile) close() error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.f == nil {
		return nil
	}
	err := rf.f.Close()
	rf.f = nil
	return err
}

func marshalRecord(r Recorded) ([]byte, error) {
	req, err := protojson.Marshal(r.Req)
	if err != nil {
		return nil, fmt.Errorf("record request: %w", err)
	}
	l := recordLine{At: r.At.UTC(), Seq: r.Seq, Local: r.Local, Trace: r.Traceparent, Key: r.Key, Request: req}
	if r.Resp != nil {
		if l.Response, err = protojson.Marshal(r.Resp); err != nil {
			return nil, fmt.Errorf("record response: %w", err)
		}
	}
	if r.Err != nil {
		st := status.Convert(r.Err)
		l.Error, l.Code = st.Message(), st.Code().String()
	}
	line, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}

// ReadRecords reads the lines of a record file back into Recorded values; Err is
// rebuilt as a gRPC status error with the recorded code and message. An error names
// the line that failed.
func ReadRecords(r io.Reader) ([]Recorded, error) {
	var out []Recorded
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l recordLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("record line %d: %w", n, err)
		}
		rec := Recorded{At: l.At, Seq: l.Seq, Local: l.Local, Traceparent: l.Trace, Key: l.Key, Req: &requesterv2beta1.SendMessageRequest{}}
		if err := protojson.Unmarshal(l.Request, rec.Req); err != nil {
			return nil, fmt.Errorf("record line %d: request: %w", n, err)
		}
		if len(l.Response) > 0 {
			rec.Resp = &sipmessagev2beta1.SIPMessage{}
			if err := protojson.Unmarshal(l.Response, rec.Resp); err != nil {
				return nil, fmt.Errorf("record line %d: response: %w", n, err)
			}
		}
		if l.Code != "" || l.Error != "" {
			rec.Err = status.Error(parseCodeName(l.Code), l.Error)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("record file: %w", err)
	}
	return out, nil
}

// parseCodeName reads a codes.Code written by Code.String ("Unavailable").
func parseCodeName(name string) codes.Code {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c
		}
	}
	return codes.Unknown
}
