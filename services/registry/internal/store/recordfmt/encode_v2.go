package recordfmt

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/registration"
)

// encodeV2 is the value of version 2 of rec.
func encodeV2(rec registration.Record) ([]byte, error) {
	m, err := recordToProto(rec)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{}.MarshalAppend([]byte{protoV2Version}, m)
}

// decodeV2 reads the Record of a value of version 2 (the version byte left
// out).
func decodeV2(b []byte) (registration.Record, error) {
	var m storepb.Record
	if err := unmarshalKnown(b, &m); err != nil {
		return registration.Record{}, err
	}
	return recordFromProto(&m)
}

// recordToProto is rec as the message of version 2, its times checked.
func recordToProto(rec registration.Record) (*storepb.Record, error) {
	var err error
	ts := func(name string, t time.Time) *timestamppb.Timestamp {
		p, e := timeToProto(t)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return p
	}
	m := &storepb.Record{
		TrunkRef:         rec.TrunkRef,
		TrunkName:        rec.TrunkName,
		Aor:              rec.AOR,
		Target:           rec.Target,
		Transport:        rec.Transport,
		EdgePort:         rec.EdgePort,
		Fingerprint:      rec.Fingerprint,
		State:            string(rec.State),
		CallId:           rec.CallID,
		FromTag:          rec.FromTag,
		Cseq:             rec.CSeq,
		CseqCeiling:      rec.CSeqCeiling,
		RequestedExpires: int64(rec.RequestedExpires),
		MinExpires:       int64(rec.MinExpires),
		NoGin:            rec.NoGin,
		GrantedExpires:   int64(rec.GrantedExpires),
		ExpiresAt:        ts("expiresAt", rec.ExpiresAt),
		RegisteredSince:  ts("registeredSince", rec.RegisteredSince),
		NextAction:       string(rec.NextAction),
		NextActionAt:     ts("nextActionAt", rec.NextActionAt),
		LastResponseCode: int64(rec.LastResponseCode),
		LastResponseType: rec.LastResponseType,
		LastReason:       rec.LastReason,
		LastError:        rec.LastError,
		Failures:         int64(rec.Failures),
		Owner:            rec.Owner,
		Fence:            rec.Fence,
		UpdatedAt:        ts("updatedAt", rec.UpdatedAt),
	}
	return m, err
}

// recordFromProto is the record m of version 2 holds, checked as Encode
// checks it, so that whatever decodes encodes again.
func recordFromProto(m *storepb.Record) (registration.Record, error) {
	var err error
	num := func(name string, n int64) int {
		if int64(int(n)) != n && err == nil {
			err = fmt.Errorf("%s: %d does not fit an int", name, n)
		}
		return int(n)
	}
	ts := func(name string, p *timestamppb.Timestamp) time.Time {
		t, e := timeFromProto(p)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return t
	}
	rec := registration.Record{
		TrunkRef:         m.GetTrunkRef(),
		TrunkName:        m.GetTrunkName(),
		AOR:              m.GetAor(),
		Target:           m.GetTarget(),
		Transport:        m.GetTransport(),
		EdgePort:         m.GetEdgePort(),
		Fingerprint:      m.GetFingerprint(),
		State:            registration.State(m.GetState()),
		CallID:           m.GetCallId(),
		FromTag:          m.GetFromTag(),
		CSeq:             m.GetCseq(),
		CSeqCeiling:      m.GetCseqCeiling(),
		RequestedExpires: num("requestedExpires", m.GetRequestedExpires()),
		MinExpires:       num("minExpires", m.GetMinExpires()),
		NoGin:            m.GetNoGin(),
		GrantedExpires:   num("grantedExpires", m.GetGrantedExpires()),
		ExpiresAt:        ts("expiresAt", m.GetExpiresAt()),
		RegisteredSince:  ts("registeredSince", m.GetRegisteredSince()),
		NextAction:       registration.Action(m.GetNextAction()),
		NextActionAt:     ts("nextActionAt", m.GetNextActionAt()),
		LastResponseCode: num("lastResponseCode", m.GetLastResponseCode()),
		LastResponseType: m.GetLastResponseType(),
		LastReason:       m.GetLastReason(),
		LastError:        m.GetLastError(),
		Failures:         num("failures", m.GetFailures()),
		Owner:            m.GetOwner(),
		Fence:            m.GetFence(),
		UpdatedAt:        ts("updatedAt", m.GetUpdatedAt()),
	}
	if err != nil {
		return registration.Record{}, err
	}
	return rec, nil
}
