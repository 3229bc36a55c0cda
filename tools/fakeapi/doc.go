// Package fakeapi is a fake of Routr's API server for tests and benchmarks: it serves
// the fonoster.routr.connect.trunks.v2beta1.Trunks gRPC service from a fixture file,
// from generated trunks, or from a set given in process, and it can be made slow or
// failing at run time.
//
// # Answers
//
//   - FindBy supports field_name "sendRegister" with field_value "true" or "false";
//     any other field or value is InvalidArgument.
//   - List returns every trunk. page_size 0 means all; otherwise page_token is the
//     decimal offset of the page and next_page_token is empty on the last page.
//   - Get returns the trunk with that ref, or NotFound.
//   - Create, Update and Delete are Unimplemented.
//
// Fault injection (SetDelay, SetFail) applies to every method, delay first. A call
// counts in FindByCalls even when it then fails.
//
// # Fixture format
//
// A fixture is a YAML or JSON document (JSON is read as YAML) holding a list of trunks
// under "trunks" ("items", the key of Routr's own list answers, is accepted too). Field
// names mirror the proto in camelCase, as Routr's API writes them in JSON. Absent
// fields take their zero value, except uris[].enabled, which defaults to true. Unknown
// fields are errors, so a typo does not pass silently. Every trunk needs a unique ref.
//
//	trunks:
//	  - ref: trunk-a                  # required, unique
//	    apiVersion: v2beta1           # optional
//	    name: Provider A
//	    sendRegister: true
//	    inboundUri: trunk-a.sip.example.net
//	    createdAt: 1700000000         # optional, int32 seconds
//	    updatedAt: 1700000000
//	    uris:
//	      - host: sip.provider-a.example
//	        port: 5060
//	        transport: UDP            # kept as written; Routr writes upper case
//	        user: "5551234"
//	        weight: 1
//	        priority: 1
//	        enabled: true             # default true
//	    outboundCredentials:
//	      ref: cred-a                 # ref, name, username, password
//	      username: alice
//	      password: secret
//	    inboundCredentials: {}        # same shape as outboundCredentials
//	    accessControlList:            # ref, name, allow, deny
//	      allow: [10.0.0.0/8]
//	    extended: {any: value}        # free-form object, becomes a google.protobuf.Struct
//
// The fixture is re-read when its modification time or size changes; that is checked
// on every call, so no watcher runs in the background. Replace the file atomically
// (write a temporary file, then rename it) so that a call never sees half a file. A
// fixture that fails to load is logged and the previous set is kept; calls fail with
// Internal only while no version of the fixture has loaded yet.
//
// # Generated trunks
//
// Options.Generate adds N deterministic trunks, i = 1..N, after the fixture's:
// ref "trunk-%06d", name "Trunk %06d", apiVersion "v2beta1", sendRegister true, one URI
// {host "10.a.b.c", where a.b.c are the three low bytes of i (trunk 1 is 10.0.0.1,
// trunk 256 is 10.0.1.0), port 5060, transport "UDP", user "user%06d", enabled true}
// and outbound credentials {ref "cred-%06d", username "user%06d", password
// "pass%06d"}. The three numbers are i.
package fakeapi
