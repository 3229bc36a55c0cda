// Package fakerequester is a fake of Routr's Requester for tests and benchmarks: a
// fonoster.routr.requester.v2beta1.Requester gRPC server that records every
// SendMessage call and answers it as a registrar would, following a script.
//
// # Answers
//
// Answers look like those of the real Requester (docs/wire.md, "Answers"): a response_type
// and a reason_phrase, never a numeric code; Call-ID, From and To copied from the
// request; the request's CSeq echoed as a "CSeq" extension. A 200 OK carries a Contact
// (sip:<AOR user>@127.0.0.1:5060) and an Expires header, both with the granted
// expiry: min(asked, max), where asked is message.expires.expires and max is the
// behaviour's expires. A request with no Expires gets max; one asking 0 (an
// unregister) gets 0. Messages in answers share parts with the requests: treat
// recorded messages as read-only.
//
// # Choosing a behaviour
//
// Each request is matched against the script's keys in this order: the AOR user of
// the To header (message.to.address.uri.user), the whole target ("host:port"), the
// target's host; when no key matches, the default behaviour applies. The default
// script answers every request at once with 200 OK and a maximum expiry of 600 s.
//
// # Behaviours
//
//   - ok: 200 OK as above.
//   - challenge: 401 with www_authenticate (scheme Digest, realm, nonce, qop "auth",
//     algorithm, opaque), or with proxy set 407 with only a "Proxy-Authenticate"
//     extension (`Digest realm="...", nonce="...", qop="auth", algorithm=MD5,
//     opaque="..."`), as Routr delivers a 407. Credentials (the authorization field
//     for 401, a "Proxy-Authorization" extension for 407) are verified per RFC 2617,
//     7616 and 8760 with qop=auth: the username, realm, opaque and algorithm must
//     match, the nonce must be one this server issued and the nonce count not used
//     before with it, and the response must be right for the request's method. Right
//     credentials get the ok answer; wrong ones the same challenge with a fresh nonce.
//     With stale_once, the first credentials for the key get a fresh challenge with
//     stale=true (www_authenticate.stale for 401, "stale=true" in the header for
//     407) whatever they are; later ones are verified.
//   - forbidden: 403 FORBIDDEN. not_found: 404 NOT_FOUND.
//   - interval_too_brief: 423 INTERVAL_TOO_BRIEF with a "Min-Expires" extension when
//     0 < asked < min_expires; otherwise ok (0 is an unregister, allowed).
//   - bad_extension: 420 BAD_EXTENSION with "Unsupported: gin" when a "Require"
//     extension lists gin; otherwise ok.
//   - server_error: 503 SERVICE_UNAVAILABLE, or the response type named in response
//     (e.g. SERVER_INTERNAL_ERROR), with "Retry-After" when retry_after is set.
//   - respond: the response type named in response (any of them, e.g. DECLINE or
//     TEMPORARILY_UNAVAILABLE), with "Retry-After" when retry_after is set.
//   - request_timeout: 408 REQUEST_TIMEOUT, as Routr answers after Timer F.
//   - hang: no answer; the call ends when the client's context does.
//   - unavailable: the call fails with gRPC status Unavailable.
//
// On any behaviour, delay answers after that time (or when the client gives up,
// whichever comes first), and fail_n limits the behaviour to the first N requests of
// that key; later ones get ok (keeping the behaviour's expires and delay). The count
// is per matched key, or per AOR user (else target host) for the default behaviour,
// and starts again when the behaviour of that key is set.
//
// # Arrival order
//
// Requests lists the calls answered, in the order they were answered. Arrivals lists
// every call received, in the order it arrived (Recorded.Seq), the ones still in
// flight included, and WaitArrivals waits on it: with answers of different delays,
// that is the order a registrar would see the requests in. Recorded.Local names the
// listener a call came in on: one Server served on one listener per client tells the
// clients apart. Recorded.Traceparent is the W3C trace context the call carried, if
// any.
//
// # Script format
//
// A script is a YAML (or JSON) document:
//
//	default_expires: 600        # max expiry of behaviours that set none (default 600)
//	default:                    # behaviour when no key matches (default: kind ok)
//	  kind: ok
//	trunks:                     # key: AOR user, or target "host:port", or target host
//	  user000001:
//	    kind: challenge
//	    realm: example.com      # default "fakerequester"
//	    algorithm: SHA-256      # MD5 (default) or SHA-256
//	    proxy: true             # 407 instead of 401
//	    username: alice
//	    password: secret
//	    stale_once: true
//	    expires: 300            # max expiry once authenticated
//	  10.0.0.2:
//	    kind: server_error
//	    response: SERVER_INTERNAL_ERROR   # default SERVICE_UNAVAILABLE
//	    retry_after: 30
//	    fail_n: 2               # two 500s, then ok
//	    delay: 200ms            # Go duration
//	  user000003: {kind: interval_too_brief, min_expires: 3600}
//	  user000004: {kind: respond, response: DECLINE}
//
// Kinds are written as above (ok, challenge, forbidden, not_found,
// interval_too_brief, bad_extension, server_error, respond, request_timeout, hang,
// unavailable); unknown keys and kinds are errors.
//
// # Record file
//
// With Options.RecordFile, every call appends one JSON line once it is answered:
//
//	{"at": "<receive time, RFC 3339>", "seq": <arrival number, from 1>,
//	 "local": "<the server's address the call came in on>",
//	 "traceparent": "<W3C trace context of the call, absent when none>",
//	 "key": "<AOR user or target host>",
//	 "request": <SendMessageRequest in protojson>,
//	 "response": <SIPMessage in protojson, absent on error>,
//	 "error": "<gRPC message, absent on success>", "code": "<gRPC code name>"}
//
// Lines are written in the order calls are answered; sort by seq for the order they
// arrived in. ReadRecords reads such a file back. The file holds credentials as sent: it is for
// tests only.
package fakerequester
