package fakerequester

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// Kind names what a behaviour answers; see the package doc.
type Kind string

// The kinds of behaviour; the package doc tells what each answers.
const (
	// KindOK answers 200 OK.
	KindOK Kind = "ok"
	// KindChallenge answers a digest challenge (401, or 407 with Proxy) until the
	// credentials are right.
	KindChallenge Kind = "challenge"
	// KindForbidden answers 403.
	KindForbidden Kind = "forbidden"
	// KindNotFound answers 404.
	KindNotFound Kind = "not_found"
	// KindIntervalTooBrief answers 423 with Min-Expires to a too short expiry.
	KindIntervalTooBrief Kind = "interval_too_brief"
	// KindBadExtension answers 420 with "Unsupported: gin" to "Require: gin".
	KindBadExtension Kind = "bad_extension"
	// KindServerError answers 503 (or Behaviour.Response).
	KindServerError Kind = "server_error"
	// KindRespond answers Behaviour.Response.
	KindRespond Kind = "respond"
	// KindRequestTimeout answers 408, as Routr does after Timer F.
	KindRequestTimeout Kind = "request_timeout"
	// KindHang never answers; the call ends with the client's context.
	KindHang Kind = "hang"
	// KindUnavailable fails the call with gRPC status Unavailable.
	KindUnavailable Kind = "unavailable"
)

var kinds = map[Kind]bool{
	KindOK: true, KindChallenge: true, KindForbidden: true, KindNotFound: true,
	KindIntervalTooBrief: true, KindBadExtension: true, KindServerError: true,
	KindRespond: true, KindRequestTimeout: true, KindHang: true, KindUnavailable: true,
}

// DefaultExpires is the largest expiry granted when neither the behaviour nor the
// script sets one.
const DefaultExpires = 600

// DefaultRealm is the digest realm of a challenge that sets none.
const DefaultRealm = "fakerequester"

// Digest algorithms a challenge may use.
const (
	// AlgorithmMD5 is MD5 (RFC 2617), the default.
	AlgorithmMD5 = "MD5"
	// AlgorithmSHA256 is SHA-256 (RFC 7616, RFC 8760).
	AlgorithmSHA256 = "SHA-256"
)

// Behaviour is how the server answers the requests of one key. The zero value is
// ok with the script's default expiry. Fields that do not apply to the kind are
// ignored.
type Behaviour struct {
	// Kind is what to answer; empty means KindOK.
	Kind Kind
	// Expires is the largest expiry granted by an OK answer (0: the script's default).
	Expires int32
	// Realm of a challenge (empty: DefaultRealm).
	Realm string
	// Algorithm of a challenge: AlgorithmMD5 (the default when empty) or AlgorithmSHA256.
	Algorithm string
	// Proxy makes a challenge a 407 instead of a 401.
	Proxy bool
	// Username and Password are the credentials a challenge accepts.
	Username, Password string
	// StaleOnce answers the first credentials of the key with a stale challenge.
	StaleOnce bool
	// MinExpires is the Min-Expires of KindIntervalTooBrief.
	MinExpires int32
	// RetryAfter, when positive, adds a Retry-After extension to KindServerError and
	// KindRespond answers.
	RetryAfter int32
	// Response is the answer of KindRespond, and of KindServerError when set (default
	// SERVICE_UNAVAILABLE).
	Response sipmessagev2beta1.ResponseType
	// Delay holds every answer back this long.
	Delay time.Duration
	// FailN, when positive, limits the behaviour to the first FailN requests of the
	// key; later requests get KindOK.
	FailN int
}

// Validate reports the first field of b that makes no sense.
func (b Behaviour) Validate() error {
	switch {
	case b.Kind != "" && !kinds[b.Kind]:
		return fmt.Errorf("kind: unknown kind %q", b.Kind)
	case b.Expires < 0:
		return errors.New("expires: must not be negative")
	case b.Algorithm != "" && normAlgorithm(b.Algorithm) == "":
		return fmt.Errorf("algorithm: %q is neither %s nor %s", b.Algorithm, AlgorithmMD5, AlgorithmSHA256)
	case b.MinExpires < 0:
		return errors.New("min_expires: must not be negative")
	case b.Kind == KindIntervalTooBrief && b.MinExpires == 0:
		return errors.New("min_expires: required by interval_too_brief")
	case b.RetryAfter < 0:
		return errors.New("retry_after: must not be negative")
	case b.Kind == KindRespond && b.Response == sipmessagev2beta1.ResponseType_UNKNOWN:
		return errors.New("response: required by respond")
	case sipmessagev2beta1.ResponseType_name[int32(b.Response)] == "":
		return fmt.Errorf("response: unknown response type %d", b.Response)
	case b.Delay < 0:
		return errors.New("delay: must not be negative")
	case b.FailN < 0:
		return errors.New("fail_n: must not be negative")
	}
	return nil
}

// normAlgorithm returns the canonical name of a digest algorithm ("" → MD5), or ""
// for one not supported.
func normAlgorithm(a string) string {
	switch strings.ToUpper(a) {
	case "", "MD5":
		return AlgorithmMD5
	case "SHA-256":
		return AlgorithmSHA256
	}
	return ""
}

// Script maps keys (AOR user, target "host:port" or target host) to behaviours.
// The zero value answers ok to everything.
type Script struct {
	// DefaultExpires is the largest expiry granted by behaviours that set no Expires
	// (0: DefaultExpires).
	DefaultExpires int32
	// Default applies to requests that match no key.
	Default Behaviour
	// Trunks holds the behaviour of each key.
	Trunks map[string]Behaviour
}

// Validate reports the first behaviour of s that makes no sense.
func (s Script) Validate() error {
	if s.DefaultExpires < 0 {
		return errors.New("default_expires: must not be negative")
	}
	if err := s.Default.Validate(); err != nil {
		return fmt.Errorf("default.%w", err)
	}
	for key, b := range s.Trunks {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("trunks[%q].%w", key, err)
		}
	}
	return nil
}

// clone returns a copy of s that shares no map with it.
func (s Script) clone() Script {
	trunks := make(map[string]Behaviour, len(s.Trunks))
	for k, b := range s.Trunks {
		trunks[k] = b
	}
	s.Trunks = trunks
	return s
}

// scriptYAML and behaviourYAML are the file format of a Script (see the package doc).
type scriptYAML struct {
	DefaultExpires int32                    `yaml:"default_expires"`
	Default        behaviourYAML            `yaml:"default"`
	Trunks         map[string]behaviourYAML `yaml:"trunks"`
}

type behaviourYAML struct {
	Kind       Kind          `yaml:"kind"`
	Expires    int32         `yaml:"expires"`
	Realm      string        `yaml:"realm"`
	Algorithm  string        `yaml:"algorithm"`
	Proxy      bool          `yaml:"proxy"`
	Username   string        `yaml:"username"`
	Password   string        `yaml:"password"`
	StaleOnce  bool          `yaml:"stale_once"`
	MinExpires int32         `yaml:"min_expires"`
	RetryAfter int32         `yaml:"retry_after"`
	Response   string        `yaml:"response"`
	Delay      time.Duration `yaml:"delay"`
	FailN      int           `yaml:"fail_n"`
}

func (y behaviourYAML) behaviour() (Behaviour, error) {
	b := Behaviour{
		Kind: y.Kind, Expires: y.Expires, Realm: y.Realm, Algorithm: y.Algorithm,
		Proxy: y.Proxy, Username: y.Username, Password: y.Password, StaleOnce: y.StaleOnce,
		MinExpires: y.MinExpires, RetryAfter: y.RetryAfter, Delay: y.Delay, FailN: y.FailN,
	}
	if y.Response != "" {
		v, ok := sipmessagev2beta1.ResponseType_value[strings.ToUpper(y.Response)]
		if !ok {
			return Behaviour{}, fmt.Errorf("response: unknown response type %q", y.Response)
		}
		b.Response = sipmessagev2beta1.ResponseType(v)
	}
	return b, b.Validate()
}

// ParseScript decodes a script document (format in the package doc).
func ParseScript(data []byte) (Script, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var y scriptYAML
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return Script{}, err
	}
	if y.DefaultExpires < 0 {
		return Script{}, errors.New("default_expires: must not be negative")
	}
	s := Script{DefaultExpires: y.DefaultExpires, Trunks: make(map[string]Behaviour, len(y.Trunks))}
	var err error
	if s.Default, err = y.Default.behaviour(); err != nil {
		return Script{}, fmt.Errorf("default.%w", err)
	}
	for key, yb := range y.Trunks {
		if s.Trunks[key], err = yb.behaviour(); err != nil {
			return Script{}, fmt.Errorf("trunks[%q].%w", key, err)
		}
	}
	return s, nil
}

// LoadScript reads the script file at path. Errors name the file.
func LoadScript(path string) (Script, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Script{}, fmt.Errorf("script: %w", err)
	}
	s, err := ParseScript(data)
	if err != nil {
		return Script{}, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return s, nil
}
