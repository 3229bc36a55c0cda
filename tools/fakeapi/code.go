package fakeapi

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// ParseCode reads a gRPC status code by name, in any case and with or without
// underscores ("UNAVAILABLE", "Unavailable", "deadline_exceeded", "DeadlineExceeded"),
// or by number ("14").
func ParseCode(name string) (codes.Code, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		if n > uint64(codes.Unauthenticated) {
			return 0, fmt.Errorf("unknown gRPC code %s", name)
		}
		return codes.Code(n), nil
	}
	want := normCode(name)
	if want == "cancelled" { // the spelling of gRPC's own docs
		return codes.Canceled, nil
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if normCode(c.String()) == want {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown gRPC code %q", name)
}

func normCode(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}
