package sipmsg

import (
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

type rt = sipmessagev2beta1.ResponseType

// codes maps every Routr response type to its SIP status code. The class-level values
// (SUCCESS, REDIRECTION, CLIENT_ERROR, SERVER_ERROR, GLOBAL_ERROR) stand for "some code
// of that class" and map to x00. This is the only table of its kind in the registry.
var codes = map[rt]int{
	sipmessagev2beta1.ResponseType_TRYING:                             100,
	sipmessagev2beta1.ResponseType_RINGING:                            180,
	sipmessagev2beta1.ResponseType_CALL_IS_BEING_FORWARDED:            181,
	sipmessagev2beta1.ResponseType_QUEUED:                             182,
	sipmessagev2beta1.ResponseType_SESSION_PROGRESS:                   183,
	sipmessagev2beta1.ResponseType_SUCCESS:                            200,
	sipmessagev2beta1.ResponseType_OK:                                 200,
	sipmessagev2beta1.ResponseType_ACCEPTED:                           202,
	sipmessagev2beta1.ResponseType_REDIRECTION:                        300,
	sipmessagev2beta1.ResponseType_MULTIPLE_CHOICES:                   300,
	sipmessagev2beta1.ResponseType_MOVED_PERMANENTLY:                  301,
	sipmessagev2beta1.ResponseType_MOVED_TEMPORARILY:                  302,
	sipmessagev2beta1.ResponseType_USE_PROXY:                          305,
	sipmessagev2beta1.ResponseType_ALTERNATIVE_SERVICE:                380,
	sipmessagev2beta1.ResponseType_CLIENT_ERROR:                       400,
	sipmessagev2beta1.ResponseType_BAD_REQUEST:                        400,
	sipmessagev2beta1.ResponseType_UNAUTHORIZED:                       401,
	sipmessagev2beta1.ResponseType_PAYMENT_REQUIRED:                   402,
	sipmessagev2beta1.ResponseType_FORBIDDEN:                          403,
	sipmessagev2beta1.ResponseType_NOT_FOUND:                          404,
	sipmessagev2beta1.ResponseType_METHOD_NOT_ALLOWED:                 405,
	sipmessagev2beta1.ResponseType_NOT_ACCEPTABLE:                     406,
	sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED:      407,
	sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT:                    408,
	sipmessagev2beta1.ResponseType_GONE:                               410,
	sipmessagev2beta1.ResponseType_REQUEST_ENTITY_TOO_LARGE:           413,
	sipmessagev2beta1.ResponseType_REQUEST_URI_TOO_LONG:               414,
	sipmessagev2beta1.ResponseType_UNSUPPORTED_MEDIA_TYPE:             415,
	sipmessagev2beta1.ResponseType_UNSUPPORTED_URI_SCHEME:             416,
	sipmessagev2beta1.ResponseType_BAD_EXTENSION:                      420,
	sipmessagev2beta1.ResponseType_EXTENSION_REQUIRED:                 421,
	sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF:                 423,
	sipmessagev2beta1.ResponseType_TEMPORARILY_UNAVAILABLE:            480,
	sipmessagev2beta1.ResponseType_CALL_OR_TRANSACTION_DOES_NOT_EXIST: 481,
	sipmessagev2beta1.ResponseType_LOOP_DETECTED:                      482,
	sipmessagev2beta1.ResponseType_TOO_MANY_HOPS:                      483,
	sipmessagev2beta1.ResponseType_ADDRESS_INCOMPLETE:                 484,
	sipmessagev2beta1.ResponseType_AMBIGUOUS:                          485,
	sipmessagev2beta1.ResponseType_BUSY_HERE:                          486,
	sipmessagev2beta1.ResponseType_REQUEST_TERMINATED:                 487,
	sipmessagev2beta1.ResponseType_NOT_ACCEPTABLE_HERE:                488,
	sipmessagev2beta1.ResponseType_BAD_EVENT:                          489,
	sipmessagev2beta1.ResponseType_REQUEST_PENDING:                    491,
	sipmessagev2beta1.ResponseType_UNDECIPHERABLE:                     493,
	sipmessagev2beta1.ResponseType_SERVER_ERROR:                       500,
	sipmessagev2beta1.ResponseType_SERVER_INTERNAL_ERROR:              500,
	sipmessagev2beta1.ResponseType_NOT_IMPLEMENTED:                    501,
	sipmessagev2beta1.ResponseType_BAD_GATEWAY:                        502,
	sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE:                503,
	sipmessagev2beta1.ResponseType_SERVER_TIMEOUT:                     504,
	sipmessagev2beta1.ResponseType_VERSION_NOT_SUPPORTED:              505,
	sipmessagev2beta1.ResponseType_MESSAGE_TOO_LARGE:                  513,
	sipmessagev2beta1.ResponseType_GLOBAL_ERROR:                       600,
	sipmessagev2beta1.ResponseType_BUSY_EVERYWHERE:                    600,
	sipmessagev2beta1.ResponseType_DECLINE:                            603,
	sipmessagev2beta1.ResponseType_DOES_NOT_EXIST_ANYWHERE:            604,
	sipmessagev2beta1.ResponseType_SESSION_NOT_ACCEPTABLE:             606,
}

// Code returns the SIP status code of a Routr response type (0 for UNKNOWN or a value
// outside the enum).
func Code(t sipmessagev2beta1.ResponseType) int { return codes[t] }
