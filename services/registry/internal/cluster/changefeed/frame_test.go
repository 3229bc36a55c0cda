package changefeed

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"sipreg.dev/services/registry/internal/redistest"
)

// putMessage is the message fencedPutScript publishes for replica and values,
// built in Go.
func putMessage(replica string, values ...string) string {
	b := appendFrame([]byte{putMark}, replica)
	for _, v := range values {
		b = appendFrame(b, v)
	}
	return string(b)
}

func TestSplitPut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\x00:\xff", 40000)
	for _, tc := range []struct {
		replica string
		values  []string
	}{
		{"a", []string{"x"}},
		{"replica-a", redistest.AwkwardValues()},
		{":", []string{""}},
		{"r\x00:\"", []string{long, "", long[:9], long[:10]}},
	} {
		msg := putMessage(tc.replica, tc.values...)
		replica, values, err := SplitPut(msg)
		if err != nil || replica != tc.replica || !slices.Equal(values, tc.values) {
			t.Errorf("SplitPut(%q) = %q, %q, %v; want %q, %q", msg, replica, values, err, tc.replica, tc.values)
		}
	}
	for _, msg := range []string{
		"",
		"P",
		"P1:a",              // no record
		"P0:1:x",            // empty replica
		"P1:a2:x",           // short
		"P1:a1:xy",          // trailing byte
		"P1:a01:x",          // leading zero
		"P1:a-1:x",          // sign
		"P1:a+1:x",          // sign
		"P1:a:x",            // no length
		"P1:a1",             // no colon
		"P1:a1x",            // no colon
		"P1:a 1:x",          // space
		"P1:a99999999999:x", // too many digits
		"P1:a9999999999:x",  // more than is left
		"Q1:a1:x",
		`{"replica":"a","put":[]}`,
	} {
		if replica, values, err := SplitPut(msg); !errors.Is(err, errFrame) {
			t.Errorf("SplitPut(%q) = %q, %q, %v; want errFrame", msg, replica, values, err)
		}
	}
}

// FuzzSplitPut checks that SplitPut never panics, and that what it reads is
// exactly what the script writes: building the message again from what it
// returns gives the input back, so no two messages read the same. The seed
// corpus is in testdata/fuzz/FuzzSplitPut.
func FuzzSplitPut(f *testing.F) {
	f.Add(putMessage("replica-a", redistest.AwkwardValues()...))
	f.Add(putMessage("a", "x"))
	f.Add("P1:a01:x")
	f.Fuzz(func(t *testing.T, msg string) {
		replica, values, err := SplitPut(msg)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("SplitPut(%q): %v, not errFrame", msg, err)
			}
			return
		}
		if replica == "" || len(values) == 0 {
			t.Fatalf("SplitPut(%q) = %q, %q", msg, replica, values)
		}
		if again := putMessage(replica, values...); again != msg {
			t.Fatalf("SplitPut(%q) = %q, %q, which make %q", msg, replica, values, again)
		}
	})
}
