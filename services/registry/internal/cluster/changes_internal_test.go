package cluster

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

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

// awkward are values whose bytes a careless framing would trip on.
var awkward = []string{
	"",
	":",
	`"`,
	`\`,
	"\x00",
	"\x00\x00:12:\x00",
	"\xff\xfe\x80",
	"\x02\x0a\x05trunk",
	`{"v":1,"trunkRef":"t"}`,
	"]}",
	"P3:abc",
	"10:",
	"é€",
}

func TestSplitPut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\x00:\xff", 40000)
	for _, tc := range []struct {
		replica string
		values  []string
	}{
		{"a", []string{"x"}},
		{"replica-a", awkward},
		{":", []string{""}},
		{"r\x00:\"", []string{long, "", long[:9], long[:10]}},
	} {
		msg := putMessage(tc.replica, tc.values...)
		replica, values, err := splitPut(msg)
		if err != nil || replica != tc.replica || !slices.Equal(values, tc.values) {
			t.Errorf("splitPut(%q) = %q, %q, %v; want %q, %q", msg, replica, values, err, tc.replica, tc.values)
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
		if replica, values, err := splitPut(msg); !errors.Is(err, errFrame) {
			t.Errorf("splitPut(%q) = %q, %q, %v; want errFrame", msg, replica, values, err)
		}
	}
}

// FuzzSplitPut checks that splitPut never panics, and that what it reads is
// exactly what the script writes: building the message again from what it
// returns gives the input back, so no two messages read the same. The seed
// corpus is in testdata/fuzz/FuzzSplitPut.
func FuzzSplitPut(f *testing.F) {
	f.Add(putMessage("replica-a", awkward...))
	f.Add(putMessage("a", "x"))
	f.Add("P1:a01:x")
	f.Fuzz(func(t *testing.T, msg string) {
		replica, values, err := splitPut(msg)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("splitPut(%q): %v, not errFrame", msg, err)
			}
			return
		}
		if replica == "" || len(values) == 0 {
			t.Fatalf("splitPut(%q) = %q, %q", msg, replica, values)
		}
		if again := putMessage(replica, values...); again != msg {
			t.Fatalf("splitPut(%q) = %q, %q, which make %q", msg, replica, values, again)
		}
	})
}

// TestFencedPutScriptFrames runs the fenced write script itself with values of
// every byte (not records: the script must not look into them) and reads what
// it published: every value it wrote, byte for byte, in order, none it refused.
func TestFencedPutScriptFrames(t *testing.T) {
	long := strings.Repeat("\x00\xff:\"\\", 30000) // a length of 6 digits
	values := append(slices.Clone(awkward), long)
	redistest.Each(t, func(t *testing.T, s redistest.Server) {
		ctx := t.Context()
		prefix := s.Prefix
		if prefix == "" {
			prefix = "sipreg:"
		}
		c := New(Options{Client: s.Client, Prefix: prefix, ReplicaID: "replica-\x00:\"-a"})
		ps := s.Client.Subscribe(ctx, c.changesChannel())
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := c.Claim(ctx, []string{"t"})
		if err != nil || got["t"] == 0 {
			t.Fatalf("Claim = %v, %v", got, err)
		}
		keys := []string{}
		args := []any{c.changesChannel(), c.changeHead()}
		for i, v := range values {
			keys = append(keys, prefix+"rec:"+string(rune('a'+i)), c.leaseKey("t"))
			lease := c.leaseValue(got["t"])
			if i == 1 {
				lease = c.leaseValue(got["t"] + 1) // refused
			}
			args = append(args, lease, v, time.Hour.Milliseconds())
		}
		flags, err := fencedPutScript.Run(ctx, s.Client, keys, args...).Text()
		if want := "1" + "0" + strings.Repeat("1", len(values)-2); err != nil || flags != want {
			t.Fatalf("script = %q, %v; want %q", flags, err, want)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(msg.Payload, c.changeHead()) {
			t.Errorf("message %q does not start with the head %q", msg.Payload, c.changeHead())
		}
		replica, published, err := splitPut(msg.Payload)
		want := slices.Delete(slices.Clone(values), 1, 2)
		if err != nil || replica != c.ID() || !slices.Equal(published, want) {
			t.Fatalf("published %q: %q, %d values, %v; want %q, %q", msg.Payload, replica, len(published), err, c.ID(), want)
		}
		for i, v := range values {
			stored, err := s.Client.Get(ctx, keys[2*i]).Result()
			if i == 1 {
				if err == nil {
					t.Errorf("refused value stored as %q", stored)
				}
				continue
			}
			if err != nil || stored != v {
				t.Errorf("value %d stored as %q, %v; want %q", i, stored, err, v)
			}
		}
	})
}
