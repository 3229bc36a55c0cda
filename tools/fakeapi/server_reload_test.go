package fakeapi

import (
	"context"
	"os"
	"testing"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// replaceFile swaps path's content atomically, as the package doc advises.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitForRefs polls FindBy until want comes back or the test's deadline passes.
func waitForRefs(t *testing.T, c trunksv2beta1.TrunksClient, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got string
	for ctx.Err() == nil {
		resp, err := c.FindBy(ctx, &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
		if err == nil {
			if got = refs(resp.GetItems()); got == want {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("FindBy refs = %q, want %q before the deadline", got, want)
}

func TestFixtureReload(t *testing.T) {
	path := writeFile(t, "trunks.yaml", fixtureYAML)
	s := New(Options{Fixture: path})
	c := start(t, s)
	waitForRefs(t, c, "trunk-a,trunk-c")

	steps := []struct {
		name    string
		content string
		want    string
	}{
		{"trunk added", fixtureYAML + "  - {ref: trunk-d, sendRegister: true}\n", "trunk-a,trunk-c,trunk-d"},
		{"switched to json", `{"trunks": [{"ref": "trunk-j", "sendRegister": true}]}`, "trunk-j"},
		{"broken file keeps the previous set", "trunks: [{ref: x, bogus: 1}]", "trunk-j"},
		{"fixed again", "trunks: [{ref: trunk-z, sendRegister: true}, {ref: trunk-y}]", "trunk-z"},
		{"emptied", "trunks: []", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			replaceFile(t, path, st.content)
			waitForRefs(t, c, st.want)
		})
	}
}

func TestSetTrunksAndGenerateWithFixture(t *testing.T) {
	path := writeFile(t, "trunks.yaml", "trunks: [{ref: fixed, sendRegister: true}]")
	s := New(Options{Fixture: path, Generate: 2})
	c := start(t, s)
	waitForRefs(t, c, "fixed,trunk-000001,trunk-000002")

	in := []*trunksv2beta1.Trunk{{Ref: "set-1", SendRegister: true}, {Ref: "set-2"}}
	s.SetTrunks(in)
	in[0].Ref = "changed by the caller" // the server holds copies
	waitForRefs(t, c, "set-1")

	replaceFile(t, path, "trunks: [{ref: fixed-again, sendRegister: true}]")
	waitForRefs(t, c, "fixed-again,trunk-000001,trunk-000002")
}

func TestGenerated100kInOneCall(t *testing.T) {
	s := New(Options{Generate: 100000})
	c := start(t, s)
	resp, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
	if err != nil {
		t.Fatalf("FindBy() error = %v", err)
	}
	items := resp.GetItems()
	if len(items) != 100000 {
		t.Fatalf("FindBy() gave %d trunks, want 100000", len(items))
	}
	if items[0].GetRef() != "trunk-000001" || items[99999].GetRef() != "trunk-100000" {
		t.Errorf("first/last refs = %s/%s", items[0].GetRef(), items[99999].GetRef())
	}
	for _, tr := range []*trunksv2beta1.Trunk{items[0], items[99999]} {
		if tr.GetOutboundCredentials().GetUsername() == "" || tr.GetOutboundCredentials().GetPassword() == "" {
			t.Errorf("trunk %s has no outbound credentials", tr.GetRef())
		}
	}
}
