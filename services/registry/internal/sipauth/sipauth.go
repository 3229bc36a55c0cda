// Package sipauth answers SIP digest challenges for the registrant (the client side of
// RFC 3261 §22 with RFC 2617 and RFC 8760): it reads a challenge out of a Routr SIPMessage
// (a 401's WWW-Authenticate or a 407's Proxy-Authenticate), computes the answer, and puts
// it back on a request as an Authorization field or a Proxy-Authorization extension. It
// also renders the X-Gateway-Auth value that Routr's EdgePort expects, and redacts
// messages for logs. It is pure: no I/O, no clocks, no package state (crypto/rand for a
// cnonce is its only source of entropy).
//
// Algorithms: MD5 (also when the challenge names none) and SHA-256, with qop=auth or
// without qop (RFC 2069 style). The "-sess" variants, SHA-512-256 and qop=auth-int are
// refused. When several challenges are offered (RFC 8760), SHA-256 is preferred.
//
// Library use: the response hash comes from github.com/icholy/digest (its Digest function
// covers MD5, SHA-256, qop=auth and the no-qop form, and is the one place where a mistake
// would be silent). Its header parsing and formatting are not used, because they do not fit
// SIP: parameter names are matched case-sensitively, only spaces count as whitespace (SIP
// allows tabs and folded lines), a qop list such as "auth-int, auth" is split without
// trimming so "auth" is not found, a header value holding several challenges cannot be
// read, credentials are written in a fixed order with response last, and values are quoted
// with strconv.Quote, whose \u and \x escapes are not SIP quoted-pairs. The small parser
// and formatter here follow RFC 3261 §25.1 instead.
//
// Secrets: an Authorization's response and a Credentials' password never appear in what
// String, Format (every fmt verb), LogValue or MarshalJSON produce, nor in any error this
// package returns; Redact makes a copy of a message that is safe to log.
package sipauth

import "errors"

// ErrNoChallenge means the message carries no challenge to answer: it is not a 401 or 407,
// or neither the field nor the extension holds one.
var ErrNoChallenge = errors.New("no challenge")

// ErrNotDigest means the only challenges offered use a scheme other than Digest.
var ErrNotDigest = errors.New("scheme not digest")

// ErrUnsupportedAlgorithm means the challenge asks for an algorithm other than MD5 and
// SHA-256 (for example MD5-sess, SHA-256-sess or SHA-512-256).
var ErrUnsupportedAlgorithm = errors.New("unsupported algorithm")

// ErrUnsupportedQop means the challenge offers qop values, none of them "auth" (for
// example only "auth-int").
var ErrUnsupportedQop = errors.New("unsupported qop")

// ErrMalformedChallenge means a challenge could not be parsed or lacks its nonce.
var ErrMalformedChallenge = errors.New("malformed challenge")

// ErrInvalidCredentials means credentials cannot be used as given (an empty username, a
// character that cannot travel in a header, or a ':' in X-Gateway-Auth credentials). The
// error text never contains the password.
var ErrInvalidCredentials = errors.New("invalid credentials")

// redacted replaces every secret in rendered output.
const redacted = "REDACTED"
