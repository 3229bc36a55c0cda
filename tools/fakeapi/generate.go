package fakeapi

import (
	"fmt"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// Generate returns n deterministic trunks, numbered 1..n, as described in the package
// doc. The same n always gives the same trunks.
func Generate(n int) []*trunksv2beta1.Trunk {
	out := make([]*trunksv2beta1.Trunk, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		user := fmt.Sprintf("user%06d", i)
		out = append(out, &trunksv2beta1.Trunk{
			Ref:          fmt.Sprintf("trunk-%06d", i),
			ApiVersion:   "v2beta1",
			Name:         fmt.Sprintf("Trunk %06d", i),
			SendRegister: true,
			Uris: []*trunksv2beta1.TrunkURI{{
				Host:      fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff),
				Port:      5060,
				Transport: "UDP",
				User:      user,
				Enabled:   true,
			}},
			OutboundCredentials: &credentialsv2beta1.Credentials{
				ApiVersion: "v2beta1",
				Ref:        fmt.Sprintf("cred-%06d", i),
				Username:   user,
				Password:   fmt.Sprintf("pass%06d", i),
			},
		})
	}
	return out
}
