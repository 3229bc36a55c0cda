package gen_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/connect/acl/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	_ "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// The Routr wire contract, transcribed from Routr's own .proto files (see docs/wire.md,
// "The contract files"). Each message lists every field as "number name type"; a type
// is a scalar, a message or enum (short names resolve in the message's own package, or
// give the full name), "[]T" for repeated, "map<K,V>" for maps. The test fails when a
// generated descriptor differs in any way.
const (
	common     = "fonoster.routr.common.v2beta1."
	processor  = "fonoster.routr.processor.v2beta1."
	sipmessage = "fonoster.routr.sipmessage.v2beta1."
	requester  = "fonoster.routr.requester.v2beta1."
	trunks     = "fonoster.routr.connect.trunks.v2beta1."
	creds      = "fonoster.routr.connect.credentials.v2beta1."
	acl        = "fonoster.routr.connect.acl.v2beta1."
)

var wireMessages = map[string]string{
	sipmessage + "WWWAuthenticate": "1 realm string, 2 domain string, 3 scheme string, 4 nonce string, 5 algorithm string, 6 qop string, 7 opaque string, 8 stale bool",
	sipmessage + "Authorization":   "1 realm string, 2 scheme string, 3 c_nonce string, 4 nonce string, 5 algorithm string, 6 qop string, 7 opaque string, 8 response string, 9 username string, 10 uri string, 11 method string, 12 nonce_count int32",
	sipmessage + "CallID":          "1 call_id string",
	sipmessage + "ContentLength":   "1 content_length int32",
	sipmessage + "Extension":       "1 name string, 2 value string",
	sipmessage + "Via":             "1 host string, 2 port int32, 3 branch string, 4 transport string, 5 r_port_flag bool, 6 r_port int32, 7 received string, 8 m_addr string, 9 ttl int32",
	sipmessage + "SipURI":          "1 user string, 2 user_password string, 3 host string, 4 transport_param string, 5 m_addr_param string, 6 method_param string, 7 user_param string, 8 ttl_param int32, 9 port int32, 10 lr_param bool, 11 bnc_param bool, 12 secure bool",
	sipmessage + "Address":         "1 uri SipURI, 2 display_name string, 3 wildcard bool",
	sipmessage + "MaxForwards":     "1 max_forwards int32",
	sipmessage + "Route":           "1 address Address, 2 parameters map<string,string>",
	sipmessage + "RecordRoute":     "1 address Address, 2 parameters map<string,string>",
	sipmessage + "From":            "1 address Address, 2 tag string, 3 parameters map<string,string>",
	sipmessage + "To":              "1 address Address, 2 tag string, 3 parameters map<string,string>",
	sipmessage + "Contact":         "1 address Address, 2 expires int32, 3 q_value float",
	sipmessage + "Expires":         "1 expires int32",
	sipmessage + "SIPMessage":      "1 response_type ResponseType, 2 request_uri SipURI, 3 from From, 4 to To, 5 contact Contact, 6 call_id CallID, 7 content_length ContentLength, 8 expires Expires, 9 www_authenticate WWWAuthenticate, 10 max_forwards MaxForwards, 11 authorization Authorization, 12 extensions []Extension, 13 via []Via, 14 route []Route, 15 record_route []RecordRoute, 16 reason_phrase string, 17 body string",

	requester + "SendMessageRequest":  "1 target string, 2 method " + processor + "Method, 3 transport " + common + "Transport, 4 message " + sipmessage + "SIPMessage",
	requester + "SendMessageResponse": "1 message " + sipmessage + "SIPMessage",

	trunks + "TrunkURI":           "1 host string, 2 port int32, 3 transport string, 4 user string, 5 weight int32, 6 priority int32, 7 enabled bool",
	trunks + "Trunk":              "1 ref string, 2 api_version string, 3 name string, 4 send_register bool, 5 inbound_uri string, 6 created_at int32, 7 updated_at int32, 8 access_control_list " + acl + "AccessControlList, 9 inbound_credentials " + creds + "Credentials, 10 outbound_credentials " + creds + "Credentials, 11 uris []TrunkURI, 12 extended google.protobuf.Struct",
	trunks + "FindByRequest":      "1 field_name string, 2 field_value string",
	trunks + "FindByResponse":     "1 items []Trunk",
	trunks + "ListTrunkRequest":   "1 page_size int32, 2 page_token string",
	trunks + "ListTrunksResponse": "1 items []Trunk, 2 next_page_token string",
	trunks + "GetTrunkRequest":    "1 ref string",
	trunks + "CreateTrunkRequest": "1 api_version string, 2 name string, 3 send_register bool, 4 inbound_uri string, 5 access_control_list_ref string, 6 inbound_credentials_ref string, 7 outbound_credentials_ref string, 8 uris []TrunkURI, 9 extended google.protobuf.Struct",
	trunks + "UpdateTrunkRequest": "1 api_version string, 2 ref string, 3 name string, 4 send_register bool, 5 inbound_uri string, 6 access_control_list_ref string, 7 inbound_credentials_ref string, 8 outbound_credentials_ref string, 9 uris []TrunkURI, 10 extended google.protobuf.Struct",
	trunks + "DeleteTrunkRequest": "1 ref string",

	creds + "Credentials":     "1 api_version string, 2 ref string, 3 name string, 4 username string, 5 password string, 6 created_at int32, 7 updated_at int32, 8 extended google.protobuf.Struct",
	acl + "AccessControlList": "1 api_version string, 2 ref string, 3 name string, 4 allow []string, 5 deny []string, 6 created_at int32, 7 updated_at int32, 8 extended google.protobuf.Struct",
}

var wireEnums = map[string][]string{
	common + "Transport": {"UDP", "TCP", "TLS", "SCTP", "WS", "WSS"},
	processor + "Method": {"UNKNOWN", "REGISTER", "INVITE", "MESSAGE", "PUBLISH", "NOTIFY", "SUBSCRIBE",
		"ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "INFO", "REFER", "UPDATE"},
	sipmessage + "ResponseType": strings.Fields(`UNKNOWN TRYING RINGING CALL_IS_BEING_FORWARDED QUEUED
		SESSION_PROGRESS SUCCESS OK ACCEPTED REDIRECTION MULTIPLE_CHOICES MOVED_PERMANENTLY
		MOVED_TEMPORARILY USE_PROXY ALTERNATIVE_SERVICE CLIENT_ERROR BAD_REQUEST UNAUTHORIZED
		PAYMENT_REQUIRED FORBIDDEN NOT_FOUND METHOD_NOT_ALLOWED NOT_ACCEPTABLE
		PROXY_AUTHENTICATION_REQUIRED REQUEST_TIMEOUT GONE REQUEST_ENTITY_TOO_LARGE
		REQUEST_URI_TOO_LONG UNSUPPORTED_MEDIA_TYPE UNSUPPORTED_URI_SCHEME BAD_EXTENSION
		EXTENSION_REQUIRED INTERVAL_TOO_BRIEF TEMPORARILY_UNAVAILABLE
		CALL_OR_TRANSACTION_DOES_NOT_EXIST LOOP_DETECTED TOO_MANY_HOPS ADDRESS_INCOMPLETE AMBIGUOUS
		BUSY_HERE REQUEST_TERMINATED NOT_ACCEPTABLE_HERE BAD_EVENT REQUEST_PENDING UNDECIPHERABLE
		SERVER_ERROR SERVER_INTERNAL_ERROR NOT_IMPLEMENTED BAD_GATEWAY SERVICE_UNAVAILABLE
		SERVER_TIMEOUT VERSION_NOT_SUPPORTED MESSAGE_TOO_LARGE GLOBAL_ERROR BUSY_EVERYWHERE DECLINE
		DOES_NOT_EXIST_ANYWHERE SESSION_NOT_ACCEPTABLE`),
}

// wireServices lists each service method as "Name Input Output" (short names in the
// service's package).
var wireServices = map[string][]string{
	requester + "Requester": {"SendMessage SendMessageRequest SendMessageResponse"},
	trunks + "Trunks": {
		"Create CreateTrunkRequest Trunk", "Update UpdateTrunkRequest Trunk", "Get GetTrunkRequest Trunk",
		"Delete DeleteTrunkRequest google.protobuf.Empty", "List ListTrunkRequest ListTrunksResponse",
		"FindBy FindByRequest FindByResponse",
	},
}

func pkgOf(full string) string { return full[:strings.LastIndex(full, ".")+1] }

// qualify resolves a short type name in pkg; names with a dot are already full.
func qualify(pkg, name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return pkg + name
}

var scalarKinds = map[string]protoreflect.Kind{
	"string": protoreflect.StringKind, "bool": protoreflect.BoolKind, "int32": protoreflect.Int32Kind,
	"float": protoreflect.FloatKind,
}

// describe renders a field descriptor in the contract's own notation.
func describe(pkg string, f protoreflect.FieldDescriptor) string {
	typ := func(f protoreflect.FieldDescriptor) string {
		switch f.Kind() {
		case protoreflect.MessageKind:
			return qualify(pkg, string(f.Message().FullName()))
		case protoreflect.EnumKind:
			return qualify(pkg, string(f.Enum().FullName()))
		default:
			return f.Kind().String()
		}
	}
	switch {
	case f.IsMap():
		return fmt.Sprintf("%d %s map<%s,%s>", f.Number(), f.Name(), typ(f.MapKey()), typ(f.MapValue()))
	case f.IsList():
		return fmt.Sprintf("%d %s []%s", f.Number(), f.Name(), typ(f))
	default:
		return fmt.Sprintf("%d %s %s", f.Number(), f.Name(), typ(f))
	}
}

// normalise rewrites a contract line so that short names become full ones.
func normalise(pkg, spec string) string {
	parts := strings.Fields(spec)
	if len(parts) != 3 {
		return spec
	}
	typ := parts[2]
	switch {
	case strings.HasPrefix(typ, "map<"):
	case strings.HasPrefix(typ, "[]"):
		if _, ok := scalarKinds[typ[2:]]; !ok {
			typ = "[]" + qualify(pkg, typ[2:])
		}
	default:
		if _, ok := scalarKinds[typ]; !ok {
			typ = qualify(pkg, typ)
		}
	}
	return parts[0] + " " + parts[1] + " " + typ
}

func TestWireMessages(t *testing.T) {
	for name, spec := range wireMessages {
		t.Run(name, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Fatalf("message %s not generated: %v", name, err)
			}
			md, ok := d.(protoreflect.MessageDescriptor)
			if !ok {
				t.Fatalf("%s is not a message", name)
			}
			pkg := pkgOf(name)
			want := strings.Split(spec, ", ")
			fields := md.Fields()
			if fields.Len() != len(want) {
				t.Errorf("%s has %d fields, the contract has %d", name, fields.Len(), len(want))
			}
			for _, w := range want {
				w = normalise(pkg, w)
				num, err := strconv.Atoi(strings.Fields(w)[0])
				if err != nil {
					t.Fatalf("bad contract line %q", w)
				}
				f := fields.ByNumber(protoreflect.FieldNumber(num))
				if f == nil {
					t.Errorf("%s: field %d missing (want %q)", name, num, w)
					continue
				}
				if got := describe(pkg, f); got != w {
					t.Errorf("%s: field %d is %q, the contract says %q", name, num, got, w)
				}
			}
		})
	}
}

func TestWireSIPMessageOneof(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(sipmessage + "SIPMessage")
	if err != nil {
		t.Fatal(err)
	}
	oneof := d.(protoreflect.MessageDescriptor).Oneofs().ByName("message_type")
	if oneof == nil {
		t.Fatal("SIPMessage has no oneof message_type")
	}
	var got []string
	for i := range oneof.Fields().Len() {
		got = append(got, string(oneof.Fields().Get(i).Name()))
	}
	if strings.Join(got, ",") != "response_type,request_uri" {
		t.Errorf("oneof message_type holds %v, want [response_type request_uri]", got)
	}
}

func TestWireEnums(t *testing.T) {
	for name, values := range wireEnums {
		t.Run(name, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Fatalf("enum %s not generated: %v", name, err)
			}
			ed := d.(protoreflect.EnumDescriptor)
			if ed.Values().Len() != len(values) {
				t.Errorf("%s has %d values, the contract has %d", name, ed.Values().Len(), len(values))
			}
			for i, v := range values {
				ev := ed.Values().ByName(protoreflect.Name(v))
				if ev == nil {
					t.Errorf("%s: value %s missing", name, v)
					continue
				}
				if int(ev.Number()) != i {
					t.Errorf("%s: %s = %d, the contract says %d", name, v, ev.Number(), i)
				}
			}
		})
	}
}

func TestWireServices(t *testing.T) {
	for name, methods := range wireServices {
		t.Run(name, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Fatalf("service %s not generated: %v", name, err)
			}
			sd := d.(protoreflect.ServiceDescriptor)
			pkg := pkgOf(name)
			if sd.Methods().Len() != len(methods) {
				t.Errorf("%s has %d methods, the contract has %d", name, sd.Methods().Len(), len(methods))
			}
			for _, m := range methods {
				p := strings.Fields(m)
				md := sd.Methods().ByName(protoreflect.Name(p[0]))
				if md == nil {
					t.Errorf("%s: method %s missing", name, p[0])
					continue
				}
				if got, want := string(md.Input().FullName()), qualify(pkg, p[1]); got != want {
					t.Errorf("%s.%s takes %s, want %s", name, p[0], got, want)
				}
				if got, want := string(md.Output().FullName()), qualify(pkg, p[2]); got != want {
					t.Errorf("%s.%s returns %s, want %s", name, p[0], got, want)
				}
				if md.IsStreamingClient() || md.IsStreamingServer() {
					t.Errorf("%s.%s must be unary", name, p[0])
				}
			}
		})
	}
}

// TestWireContractCatchesRenumbering checks the checker itself: a descriptor line with a
// changed number or type must not match the contract line.
func TestWireContractCatchesRenumbering(t *testing.T) {
	d, _ := protoregistry.GlobalFiles.FindDescriptorByName(sipmessage + "Contact")
	f := d.(protoreflect.MessageDescriptor).Fields().ByName("expires")
	got := describe(sipmessage, f)
	for _, wrong := range []string{"3 expires int32", "2 expiry int32", "2 expires string"} {
		if got == normalise(sipmessage, wrong) {
			t.Errorf("contract line %q matched descriptor %q", wrong, got)
		}
	}
	if got != normalise(sipmessage, "2 expires int32") {
		t.Errorf("descriptor %q does not match its contract line", got)
	}
}
