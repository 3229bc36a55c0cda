package siprequester

import (
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// responseTypes is the one table between SIP status codes and ResponseType values. It
// holds exactly the codes that Routr's own table (ResponseCode) knows; the class-level
// values (SUCCESS, REDIRECTION, CLIENT_ERROR, SERVER_ERROR, GLOBAL_ERROR) and UNKNOWN
// have no code and never occur in an answer.
var responseTypes = []struct {
	code int
	typ  sipmessagepb.ResponseType
}{
	{100, sipmessagepb.ResponseType_TRYING},
	{180, sipmessagepb.ResponseType_RINGING},
	{181, sipmessagepb.ResponseType_CALL_IS_BEING_FORWARDED},
	{182, sipmessagepb.ResponseType_QUEUED},
	{183, sipmessagepb.ResponseType_SESSION_PROGRESS},
	{200, sipmessagepb.ResponseType_OK},
	{202, sipmessagepb.ResponseType_ACCEPTED},
	{300, sipmessagepb.ResponseType_MULTIPLE_CHOICES},
	{301, sipmessagepb.ResponseType_MOVED_PERMANENTLY},
	{302, sipmessagepb.ResponseType_MOVED_TEMPORARILY},
	{305, sipmessagepb.ResponseType_USE_PROXY},
	{380, sipmessagepb.ResponseType_ALTERNATIVE_SERVICE},
	{400, sipmessagepb.ResponseType_BAD_REQUEST},
	{401, sipmessagepb.ResponseType_UNAUTHORIZED},
	{402, sipmessagepb.ResponseType_PAYMENT_REQUIRED},
	{403, sipmessagepb.ResponseType_FORBIDDEN},
	{404, sipmessagepb.ResponseType_NOT_FOUND},
	{405, sipmessagepb.ResponseType_METHOD_NOT_ALLOWED},
	{406, sipmessagepb.ResponseType_NOT_ACCEPTABLE},
	{407, sipmessagepb.ResponseType_PROXY_AUTHENTICATION_REQUIRED},
	{408, sipmessagepb.ResponseType_REQUEST_TIMEOUT},
	{410, sipmessagepb.ResponseType_GONE},
	{413, sipmessagepb.ResponseType_REQUEST_ENTITY_TOO_LARGE},
	{414, sipmessagepb.ResponseType_REQUEST_URI_TOO_LONG},
	{415, sipmessagepb.ResponseType_UNSUPPORTED_MEDIA_TYPE},
	{416, sipmessagepb.ResponseType_UNSUPPORTED_URI_SCHEME},
	{420, sipmessagepb.ResponseType_BAD_EXTENSION},
	{421, sipmessagepb.ResponseType_EXTENSION_REQUIRED},
	{423, sipmessagepb.ResponseType_INTERVAL_TOO_BRIEF},
	{480, sipmessagepb.ResponseType_TEMPORARILY_UNAVAILABLE},
	{481, sipmessagepb.ResponseType_CALL_OR_TRANSACTION_DOES_NOT_EXIST},
	{482, sipmessagepb.ResponseType_LOOP_DETECTED},
	{483, sipmessagepb.ResponseType_TOO_MANY_HOPS},
	{484, sipmessagepb.ResponseType_ADDRESS_INCOMPLETE},
	{485, sipmessagepb.ResponseType_AMBIGUOUS},
	{486, sipmessagepb.ResponseType_BUSY_HERE},
	{487, sipmessagepb.ResponseType_REQUEST_TERMINATED},
	{488, sipmessagepb.ResponseType_NOT_ACCEPTABLE_HERE},
	{489, sipmessagepb.ResponseType_BAD_EVENT},
	{491, sipmessagepb.ResponseType_REQUEST_PENDING},
	{493, sipmessagepb.ResponseType_UNDECIPHERABLE},
	{500, sipmessagepb.ResponseType_SERVER_INTERNAL_ERROR},
	{501, sipmessagepb.ResponseType_NOT_IMPLEMENTED},
	{502, sipmessagepb.ResponseType_BAD_GATEWAY},
	{503, sipmessagepb.ResponseType_SERVICE_UNAVAILABLE},
	{504, sipmessagepb.ResponseType_SERVER_TIMEOUT},
	{505, sipmessagepb.ResponseType_VERSION_NOT_SUPPORTED},
	{513, sipmessagepb.ResponseType_MESSAGE_TOO_LARGE},
	{600, sipmessagepb.ResponseType_BUSY_EVERYWHERE},
	{603, sipmessagepb.ResponseType_DECLINE},
	{604, sipmessagepb.ResponseType_DOES_NOT_EXIST_ANYWHERE},
	{606, sipmessagepb.ResponseType_SESSION_NOT_ACCEPTABLE},
}

var (
	typeByCode = make(map[int]sipmessagepb.ResponseType, len(responseTypes))
	codeByType = make(map[sipmessagepb.ResponseType]int, len(responseTypes))
)

func init() {
	for _, rt := range responseTypes {
		typeByCode[rt.code] = rt.typ
		codeByType[rt.typ] = rt.code
	}
}

// responseTypeOf maps a SIP status code to its ResponseType. ok is false for codes that
// Routr's table does not know: Routr's EdgePort drops such responses and the Requester
// answers REQUEST_TIMEOUT when its transaction times out, so that is what is returned.
func responseTypeOf(code int) (rt sipmessagepb.ResponseType, ok bool) {
	rt, ok = typeByCode[code]
	if !ok {
		return sipmessagepb.ResponseType_REQUEST_TIMEOUT, false
	}
	return rt, true
}

// statusCodeOf maps a ResponseType back to its SIP status code; 0 for UNKNOWN and the
// class-level values.
func statusCodeOf(rt sipmessagepb.ResponseType) int {
	return codeByType[rt]
}
