package config_test

import (
	"fmt"
	"strings"
	"testing"

	"sipreg.dev/services/registry/internal/config"
)

// Every invalid file is refused with one line that starts with the file name and, for a
// field, goes on with the field's path. All messages are kept in testdata/errors.golden,
// for review.
func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		field string   // the error starts with "registry.yaml: <field>: " ("" for syntax errors)
		also  []string // more substrings of the error
	}{
		{"kind-unknown", "kind: Trunk\napiVersion: v2beta1\nspec: {}\n", "kind", []string{`"Trunk"`}},
		{"kind-wrong-case", strings.Replace(minimal(), "kind: Registry", "kind: REGISTRY", 1), "kind", nil},
		{"kind-missing", "apiVersion: v2beta1\nspec: {}\n", "kind", []string{"missing"}},
		{"apiVersion-unknown", "kind: Registry\napiVersion: v2\nspec: {}\n", "apiVersion", []string{`"v2"`}},
		{"apiVersion-missing", "kind: Registry\nspec: {}\n", "apiVersion", []string{"missing"}},
		{"spec-missing", "kind: Registry\napiVersion: v2beta1\n", "spec", []string{"missing"}},
		{"spec-not-mapping", "kind: Registry\napiVersion: v2beta1\nspec: hello\n", "spec", []string{"line 3"}},
		{"requesterAddr-missing", withSpec(api, edge), "spec.requesterAddr", []string{"missing"}},
		{"apiAddr-missing", withSpec(requester, edge), "spec.apiAddr", []string{"missing"}},
		{"edgePorts-missing", withSpec(requester, api), "spec.edgePorts", []string{"missing"}},
		{"requesterAddr-empty", withSpec(`requesterAddr: ""`, api, edge), "spec.requesterAddr", []string{"missing"}},
		{"requesterAddr-no-port", withSpec("requesterAddr: requester", api, edge), "spec.requesterAddr", []string{"missing port"}},
		{"requesterAddr-list", withSpec("requesterAddr: [a, b]", api, edge), "spec.requesterAddr", []string{"line 4"}},
		{"apiAddr-port-0", withSpec(requester, "apiAddr: apiserver:0", edge), "spec.apiAddr", []string{"bad port"}},
		{"edgePorts-empty", withSpec(requester, api, "edgePorts: []"), "spec.edgePorts", []string{"empty"}},
		{"edgePorts-string", withSpec(requester, api, "edgePorts: sip01.edgeport.net:5060"), "spec.edgePorts", []string{"line 6"}},
		{"edgePorts-item-string", withSpec(requester, api, "edgePorts: ['sip01.edgeport.net:5060']"), "spec.edgePorts[0]", []string{"line 6"}},
		{"edgePorts-address-missing", withSpec(requester, api, "edgePorts: [{region: us-east1}]"), "spec.edgePorts[0].address", []string{"missing"}},
		{"edgePorts-address-no-port", withSpec(requester, api, "edgePorts:", "  - address: sip01.edgeport.net:5060", "  - address: sip02.edgeport.net"),
			"spec.edgePorts[1].address", []string{`"sip02.edgeport.net"`, "missing port"}},
		{"edgePorts-address-port-0", withSpec(requester, api, "edgePorts: [{address: 'a:5060'}, {address: 'b:0'}]"), "spec.edgePorts[1].address", []string{"bad port"}},
		{"edgePorts-address-port-70000", withSpec(requester, api, "edgePorts: [{address: 'a:70000'}]"), "spec.edgePorts[0].address", []string{"bad port"}},
		{"edgePorts-address-port-abc", withSpec(requester, api, "edgePorts: [{address: 'a:abc'}]"), "spec.edgePorts[0].address", []string{"bad port"}},
		{"edgePorts-address-no-host", withSpec(requester, api, "edgePorts: [{address: ':5060'}]"), "spec.edgePorts[0].address", []string{"missing host"}},
		{"edgePorts-address-map", withSpec(requester, api, "edgePorts: [{address: {host: a}}]"), "spec.edgePorts[0].address", []string{"line 6"}},
		{"methods-map", minimal("methods: {INVITE: true}"), "spec.methods", []string{"line 7"}},
		{"methods-string", minimal("methods: INVITE"), "spec.methods", []string{"line 7"}},
		{"methods-item-bad", minimal(`methods: [INVITE, "MES SAGE"]`), "spec.methods[1]", nil},
		{"methods-item-list", minimal(`methods: [[INVITE]]`), "spec.methods[0]", nil},
		// Methods go on the wire (Allow): each must be an RFC 3261 token.
		{"methods-item-empty", minimal(`methods: [INVITE, ""]`), "spec.methods[1]", []string{"line 7", "token"}},
		{"methods-item-comma", minimal(`methods: ["INVITE,BYE"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-colon", minimal(`methods: ["X:Y"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-slash", minimal(`methods: ["A/B"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-quote", minimal(`methods: ['"INVITE"']`), "spec.methods[0]", []string{"token"}},
		{"methods-item-parenthesis", minimal(`methods: ["INVITE()"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-crlf", minimal(`methods: ["INVITE\r\nX-Evil: 1"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-non-ascii", minimal(`methods: ["ınvıte"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-long-s", minimal(`methods: ["meſſage"]`), "spec.methods[0]", []string{"token"}},
		// userAgent goes on the wire (User-Agent): TEXT-UTF8, not empty.
		{"userAgent-empty", minimal(`userAgent: ""`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-blank", minimal(`userAgent: "  "`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-null", minimal(`userAgent:`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-crlf", minimal(`userAgent: "Acme\r\nX-Evil: 1"`), "spec.userAgent", []string{"line 7", "U+000D"}},
		{"userAgent-lf", minimal(`userAgent: "Acme\nX-Evil: 1"`), "spec.userAgent", []string{"U+000A"}},
		{"userAgent-nul", minimal(`userAgent: "Acme\0"`), "spec.userAgent", []string{"U+0000"}},
		{"userAgent-del", minimal(`userAgent: "Acme\x7f"`), "spec.userAgent", []string{"U+007F"}},
		{"userAgent-c1", minimal(`userAgent: "Ac\u0085me"`), "spec.userAgent", []string{"U+0085"}},
		{"userAgent-list", minimal(`userAgent: [Acme]`), "spec.userAgent", []string{"line 7"}},
		// EdgePort hosts go on the wire (Route): hostname, IPv4 or [IPv6].
		{"edgePorts-host-underscore", withSpec(requester, api, "edgePorts: [{address: 'edge_1.example:5060'}]"),
			"spec.edgePorts[0].address", []string{`"edge_1.example"`, "hostname"}},
		{"edgePorts-host-space", withSpec(requester, api, "edgePorts: [{address: 'edge 1:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-at", withSpec(requester, api, "edgePorts: [{address: 'alice@edge:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-leading-hyphen", withSpec(requester, api, "edgePorts: [{address: '-edge.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-trailing-hyphen", withSpec(requester, api, "edgePorts: [{address: 'edge-.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-empty-label", withSpec(requester, api, "edgePorts: [{address: 'edge..example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-digit-toplabel", withSpec(requester, api, "edgePorts: [{address: 'edge.123:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-bad-ipv4", withSpec(requester, api, "edgePorts: [{address: '999.1.1.1:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-non-ascii", withSpec(requester, api, "edgePorts: [{address: 'édge.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-bracketed-ipv4", withSpec(requester, api, "edgePorts: [{address: '[10.0.0.1]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		{"edgePorts-host-bracketed-name", withSpec(requester, api, "edgePorts: [{address: '[edge]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		{"edgePorts-host-ipv6-zone", withSpec(requester, api, "edgePorts: [{address: '[fe80::1%eth0]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		// New durations and limits.
		{"startupCacheWait-negative", minimal("startupCacheWait: -1s"), "spec.startupCacheWait", []string{"line 7", "must not be negative"}},
		{"startupCacheWait-abc", minimal("startupCacheWait: soon"), "spec.startupCacheWait", []string{"line 7", `"soon"`}},
		{"maxWatchStreams-0", minimal("maxWatchStreams: 0"), "spec.maxWatchStreams", []string{"line 7", "out of range"}},
		{"maxWatchStreams-negative", minimal("maxWatchStreams: -3"), "spec.maxWatchStreams", []string{"line 7", "out of range"}},
		{"maxWatchStreams-float", minimal("maxWatchStreams: 2.5"), "spec.maxWatchStreams", []string{"line 7", "whole number"}},
		{"forceInterval-0", minimal("forceInterval: 0"), "spec.forceInterval", []string{"line 7", "greater than zero"}},
		{"forceInterval-negative", minimal("forceInterval: -1s"), "spec.forceInterval", []string{"line 7", "greater than zero"}},
		{"forceInterval-list", minimal("forceInterval: [1s]"), "spec.forceInterval", []string{"line 7"}},
		{"cache-not-mapping", minimal("cache: memory"), "spec.cache", []string{"line 7"}},
		{"cache-provider-unknown", minimal("cache: {provider: memcached}"), "spec.cache.provider", []string{`"memcached"`}},
		{"cache-provider-missing", minimal(`cache: {parameters: "host=redis"}`), "spec.cache.provider", []string{"missing"}},
		{"cache-empty", minimal("cache: {}"), "spec.cache.provider", []string{"missing"}},
		{"cache-provider-null", minimal("cache: {provider: }"), "spec.cache.provider", nil},
		{"cache-param-unknown", minimal(`cache: {provider: redis, parameters: "host=redis,db=2"}`), "spec.cache.parameters", []string{`"db"`}},
		{"cache-param-malformed", minimal(`cache: {provider: redis, parameters: "host=redis,port"}`), "spec.cache.parameters", []string{"key=value"}},
		{"cache-param-twice", minimal(`cache: {provider: redis, parameters: "host=a,host=b"}`), "spec.cache.parameters", []string{"twice"}},
		{"cache-param-host-empty", minimal(`cache: {provider: redis, parameters: "host="}`), "spec.cache.parameters", []string{"host"}},
		{"cache-param-port-abc", minimal(`cache: {provider: redis, parameters: "port=abc"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-port-0", minimal(`cache: {provider: redis, parameters: "port=0"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-port-70000", minimal(`cache: {provider: redis, parameters: "port=70000"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-secure", minimal(`cache: {provider: redis, parameters: "secure=maybe"}`), "spec.cache.parameters", []string{"secure"}},
		{"cache-param-addrs", minimal(`cache: {provider: redis, parameters: "addrs=a:1;b"}`), "spec.cache.parameters", []string{"addrs"}},
		{"cache-param-master-no-addrs", minimal(`cache: {provider: redis, parameters: "masterName=m"}`), "spec.cache.parameters", []string{"masterName"}},
		{"cache-parameters-list", minimal(`cache: {provider: redis, parameters: [host=a]}`), "spec.cache.parameters", []string{"line 7"}},
		{"registerInterval-0", minimal("registerInterval: 0"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-0s", minimal("registerInterval: 0s"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-negative", minimal("registerInterval: -5"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-negative-duration", minimal(`registerInterval: "-1s"`), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-abc", minimal("registerInterval: abc"), "spec.registerInterval", []string{"line 7", `"abc"`}},
		{"registerInterval-empty", minimal("registerInterval:"), "spec.registerInterval", []string{"line 7"}},
		{"registerInterval-huge", minimal("registerInterval: 1e300"), "spec.registerInterval", []string{"line 7", "out of range"}},
		{"registerInterval-nan", minimal("registerInterval: .nan"), "spec.registerInterval", []string{"line 7"}},
		{"registerInterval-list", minimal("registerInterval: [20]"), "spec.registerInterval", []string{"line 7"}},
		{"expires-0", minimal("expires: 0"), "spec.expires", []string{"line 7", "out of range"}},
		{"expires-float", minimal("expires: 1.5"), "spec.expires", []string{"line 7", "whole number"}},
		{"authMode-unknown", minimal("authMode: direct"), "spec.authMode", []string{`"direct"`}},
		{"gin-not-bool", minimal("gin: sometimes"), "spec.gin", []string{"line 7"}},
		{"maxInFlight-0", minimal("maxInFlight: 0"), "spec.maxInFlight", []string{"line 7"}},
		{"registersPerSecond-negative", minimal("registersPerSecond: -1"), "spec.registersPerSecond", []string{"line 7", "must not be negative"}},
		{"registersPerSecond-negative-fraction", minimal("registersPerSecond: -0.5"), "spec.registersPerSecond", []string{"line 7"}},
		{"registersPerSecond-inf", minimal("registersPerSecond: .inf"), "spec.registersPerSecond", []string{"line 7"}},
		{"startupSpread-negative", minimal("startupSpread: -1s"), "spec.startupSpread", []string{"line 7"}},
		{"backoffMax-below-base", minimal("backoffBase: 1m", "backoffMax: 30s"), "spec.backoffMax", nil},
		{"controlAddr-no-port", minimal("controlAddr: localhost"), "spec.controlAddr", nil},
		{"httpAddr-bad-port", minimal("httpAddr: ':99999'"), "spec.httpAddr", nil},
		{"edgePorts-address-too-many-colons", withSpec(requester, api, "edgePorts: [{address: 'a:b:5060'}]"), "spec.edgePorts[0].address", []string{"want host:port"}},
		{"gin-list", minimal("gin: [true]"), "spec.gin", []string{"line 7"}},
		{"expires-map", minimal("expires: {a: 1}"), "spec.expires", []string{"line 7"}},
		{"registersPerSecond-list", minimal("registersPerSecond: [1]"), "spec.registersPerSecond", []string{"line 7"}},
		{"registersPerSecond-abc", minimal("registersPerSecond: fast"), "spec.registersPerSecond", []string{"line 7", `"fast"`}},
		{"controlAddr-list", minimal("controlAddr: [':1']"), "spec.controlAddr", []string{"line 7"}},
		{"logFormat-unknown", minimal("logFormat: xml"), "spec.logFormat", []string{`"xml"`}},
		{"yaml-broken", "kind: Registry\napiVersion: v2beta1\nspec:\n  requesterAddr: [\n", "", []string{"line 4"}},
		{"yaml-bad-indent", "kind: Registry\napiVersion: v2beta1\nspec:\n  requesterAddr: a:1\n apiAddr: b:2\n", "", []string{"line "}},
		{"json-broken", "{\"kind\": \"Registry\",\n \"apiVersion\": \"v2beta1\"\n \"spec\": {}}\n", "", []string{"line 2"}},
		{"json-unterminated", "{\"kind\": \"Registry\",\n \"spec\": {\"requesterAddr\": \"a:1\"\n", "", []string{"line "}},
		{"json-edgePorts-string", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":"e:3"}}`,
			"spec.edgePorts", []string{"line 1"}},
		{"json-methods-map", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":[{"address":"e:3"}],"methods":{"INVITE":1}}}`,
			"spec.methods", []string{"line 1"}},
		{"json-registerInterval-bool", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":[{"address":"e:3"}],"registerInterval":true}}`,
			"spec.registerInterval", []string{"line 1"}},
		{"empty-file", "", "", nil},
		{"top-level-list", "- kind: Registry\n", "", nil},
		{"top-level-scalar", "Registry\n", "", nil},
		{"control-character", "kind: Registry\x01\n", "", nil},
	}
	var all strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(name, []byte(tt.input))
			if err == nil {
				t.Fatalf("Parse accepted it:\n%s", render(cfg))
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			msg := err.Error()
			fmt.Fprintf(&all, "%s: %s\n", tt.name, msg)
			checkOneLine(t, msg)
			if tt.field != "" && !strings.HasPrefix(msg, name+": "+tt.field+": ") {
				t.Errorf("error %q does not start with %q", msg, name+": "+tt.field+": ")
			}
			for _, w := range tt.also {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
	if !t.Failed() {
		golden(t, "errors.golden", all.String())
	}
}

// checkOneLine asserts the house rule for errors: one line, starting with the file name.
func checkOneLine(t *testing.T, msg string) {
	t.Helper()
	if !strings.HasPrefix(msg, name+": ") {
		t.Errorf("error %q does not start with %q", msg, name+": ")
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q is not one line", msg)
	}
}

// A password in cache.parameters never appears in an error, whatever else is wrong.
func TestParseRedisPasswordNeverInErrors(t *testing.T) {
	const secret = "s3cret"
	tests := []struct{ name, params, fragment string }{
		{"malformed after password", "password=s3cret,bogus", secret},
		{"malformed password", "host=redis,passwords3cret", secret},
		{"malformed password with colon", "password:s3cret", secret},
		{"malformed password in capitals", "PASSWORD s3cret", secret},
		{"unknown after password", "password=s3cret,db=2", secret},
		{"bad port after password", "password=s3cret,port=abc", secret},
		{"bad secure after password", "password=s3cret,secure=maybe", secret},
		{"password twice", "password=s3cret,password=s3cret", secret},
		{"master without addrs", "password=s3cret,masterName=m", secret},
		{"bad addrs", "password=s3cret,addrs=a", secret},
		// A password with a comma is split by the parameters syntax (Routr's too); the part
		// after the comma is still the password and must not be quoted.
		{"comma in password", "password=s3cret,Zq9w", "Zq9w"},
		{"comma and equals in password", "password=s3cret,Zq9w=x", "Zq9w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseRedisParams(tt.params)
			if err == nil {
				t.Fatalf("ParseRedisParams(%q) accepted it", tt.params)
			}
			if strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("ParseRedisParams error %q shows the password (%q)", err, tt.fragment)
			}
			in := minimal(fmt.Sprintf("cache: {provider: redis, parameters: %q}", tt.params))
			_, err = config.Parse(name, []byte(in))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			checkOneLine(t, err.Error())
			if !strings.Contains(err.Error(), "spec.cache.parameters: ") {
				t.Errorf("error %q does not name spec.cache.parameters", err)
			}
			if strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("Parse error %q shows the password (%q)", err, tt.fragment)
			}
		})
	}
}
