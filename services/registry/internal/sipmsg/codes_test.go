package sipmsg_test

import (
	"fmt"
	"strings"
	"testing"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// classMarkers are the class-level values of ResponseType: "some code of that class".
var classMarkers = map[pb.ResponseType]int{
	pb.ResponseType_SUCCESS:      200,
	pb.ResponseType_REDIRECTION:  300,
	pb.ResponseType_CLIENT_ERROR: 400,
	pb.ResponseType_SERVER_ERROR: 500,
	pb.ResponseType_GLOBAL_ERROR: 600,
}

// Every value of the enum but UNKNOWN has a code, and the code is in the class the enum's
// order puts it in: the values before SUCCESS are 1xx, those from SUCCESS to REDIRECTION
// 2xx, and so on; each class value itself is x00. The whole table is kept in
// testdata/codes.golden, for review against RFC 3261 §21.
func TestCodes(t *testing.T) {
	if len(pb.ResponseType_name) != 58 {
		t.Fatalf("ResponseType has %d values, Routr's enum has 58 (0..57)", len(pb.ResponseType_name))
	}
	var table strings.Builder
	class := 1
	for n := range int32(len(pb.ResponseType_name)) {
		typ := pb.ResponseType(n)
		code := sipmsg.Code(typ)
		if typ == pb.ResponseType_UNKNOWN {
			if code != 0 {
				t.Errorf("Code(UNKNOWN) = %d, want 0", code)
			}
			continue
		}
		if c, ok := classMarkers[typ]; ok {
			class = c / 100
			if code != c {
				t.Errorf("Code(%s) = %d, want %d", typ, code, c)
			}
		}
		if code/100 != class {
			t.Errorf("Code(%s) = %d, want a %dxx code", typ, code, class)
		}
		fmt.Fprintf(&table, "%2d %-34s %d\n", n, typ, code)
	}
	golden(t, "codes.golden", []byte(table.String()))

	// The ones the registry acts on (docs/wire.md, "The status").
	for typ, want := range map[pb.ResponseType]int{
		pb.ResponseType_OK: 200, pb.ResponseType_UNAUTHORIZED: 401, pb.ResponseType_FORBIDDEN: 403,
		pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED: 407, pb.ResponseType_REQUEST_TIMEOUT: 408,
		pb.ResponseType_BAD_EXTENSION: 420, pb.ResponseType_INTERVAL_TOO_BRIEF: 423,
		pb.ResponseType_SERVICE_UNAVAILABLE: 503,
	} {
		if got := sipmsg.Code(typ); got != want {
			t.Errorf("Code(%s) = %d, want %d", typ, got, want)
		}
	}
	for _, n := range []int32{-1, 58, 999} {
		if got := sipmsg.Code(pb.ResponseType(n)); got != 0 {
			t.Errorf("Code(%d) = %d, want 0 outside the enum", n, got)
		}
	}
}

// No two specific values share a code (only a class value may share its x00).
func TestCodesDistinct(t *testing.T) {
	seen := map[int]pb.ResponseType{}
	for n := range int32(len(pb.ResponseType_name)) {
		typ := pb.ResponseType(n)
		if _, marker := classMarkers[typ]; marker || typ == pb.ResponseType_UNKNOWN {
			continue
		}
		code := sipmsg.Code(typ)
		if other, ok := seen[code]; ok {
			t.Errorf("%s and %s both map to %d", other, typ, code)
		}
		seen[code] = typ
	}
}
