package siprequester

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// renderURI writes a SipURI as Routr's converter does: port 0 is written, a negative
// port is not.
func renderURI(u *sipmessagepb.SipURI) (string, error) {
	if u.GetHost() == "" {
		return "", errors.New("uri host is missing")
	}
	var b strings.Builder
	if u.GetSecure() {
		b.WriteString("sips:")
	} else {
		b.WriteString("sip:")
	}
	if u.GetUser() != "" {
		b.WriteString(u.GetUser())
		if u.GetUserPassword() != "" {
			b.WriteString(":" + u.GetUserPassword())
		}
		b.WriteString("@")
	}
	host := u.GetHost()
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if u.GetPort() >= 0 {
		b.WriteString(":" + strconv.Itoa(int(u.GetPort())))
	}
	param := func(k, v string) {
		if v != "" {
			b.WriteString(";" + k + "=" + v)
		}
	}
	param("transport", u.GetTransportParam())
	param("user", u.GetUserParam())
	param("method", u.GetMethodParam())
	param("maddr", u.GetMAddrParam())
	if u.GetTtlParam() > 0 {
		param("ttl", strconv.Itoa(int(u.GetTtlParam())))
	}
	if u.GetLrParam() {
		b.WriteString(";lr")
	}
	if u.GetBncParam() {
		b.WriteString(";bnc")
	}
	return b.String(), nil
}

func renderAddress(a *sipmessagepb.Address) (string, error) {
	if a == nil {
		return "", errors.New("address is missing")
	}
	uri, err := renderURI(a.GetUri())
	if err != nil {
		return "", err
	}
	if a.GetDisplayName() != "" {
		return quote(a.GetDisplayName()) + " <" + uri + ">", nil
	}
	return "<" + uri + ">", nil
}

func renderTag(tag string) string {
	if tag == "" {
		return ""
	}
	return ";tag=" + tag
}

// renderParams writes header parameters in key order, so the output is stable.
func renderParams(params map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if strings.EqualFold(k, "tag") {
			continue // the tag field is the one written
		}
		b.WriteString(";" + k)
		if v := params[k]; v != "" {
			b.WriteString("=" + v)
		}
	}
	return b.String()
}

func renderVia(v *sipmessagepb.Via) string {
	transport := strings.ToUpper(v.GetTransport())
	if transport == "" {
		transport = "UDP"
	}
	host := v.GetHost()
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	var b strings.Builder
	b.WriteString("SIP/2.0/" + transport + " " + host)
	if v.GetPort() > 0 {
		b.WriteString(":" + strconv.Itoa(int(v.GetPort())))
	}
	if v.GetBranch() != "" {
		b.WriteString(";branch=" + v.GetBranch())
	}
	switch {
	case v.GetRPort() > 0:
		b.WriteString(";rport=" + strconv.Itoa(int(v.GetRPort())))
	case v.GetRPortFlag():
		b.WriteString(";rport")
	}
	if v.GetReceived() != "" {
		b.WriteString(";received=" + v.GetReceived())
	}
	if v.GetMAddr() != "" {
		b.WriteString(";maddr=" + v.GetMAddr())
	}
	if v.GetTtl() > 0 {
		b.WriteString(";ttl=" + strconv.Itoa(int(v.GetTtl())))
	}
	return b.String()
}

// renderAuthorization writes the authorization field as a Digest credentials header:
// username, realm, nonce, uri and response, algorithm, qop, nc (8 hex digits), cnonce,
// opaque; empty values are left out.
func renderAuthorization(a *sipmessagepb.Authorization) string {
	scheme := a.GetScheme()
	if scheme == "" {
		scheme = "Digest"
	}
	var params []string
	quoted := func(k, v string) {
		if v != "" {
			params = append(params, k+"="+quote(v))
		}
	}
	token := func(k, v string) {
		if v != "" {
			params = append(params, k+"="+v)
		}
	}
	quoted("username", a.GetUsername())
	quoted("realm", a.GetRealm())
	quoted("nonce", a.GetNonce())
	quoted("uri", a.GetUri())
	quoted("response", a.GetResponse())
	token("algorithm", a.GetAlgorithm())
	token("qop", a.GetQop())
	if a.GetQop() != "" || a.GetNonceCount() > 0 {
		token("nc", fmt.Sprintf("%08x", uint32(a.GetNonceCount())))
	}
	quoted("cnonce", a.GetCNonce())
	quoted("opaque", a.GetOpaque())
	return scheme + " " + strings.Join(params, ", ")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
