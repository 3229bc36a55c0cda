package kamailio

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
)

func (o *Options) setDefaults() error {
	if o.MinExpires == 0 {
		o.MinExpires = 60
	}
	if o.MaxExpires == 0 {
		o.MaxExpires = 3600
	}
	if o.DefaultExpires == 0 {
		o.DefaultExpires = 300
	}
	if o.Realm == "" {
		o.Realm = "test.local"
	}
	switch o.AuthAlg {
	case "", "MD5", "SHA-256":
	default:
		return fmt.Errorf("AuthAlg %q: want \"\", \"MD5\" or \"SHA-256\"", o.AuthAlg)
	}
	if o.MinExpires < 0 || o.MaxExpires < o.MinExpires || o.DefaultExpires < 0 {
		return fmt.Errorf("expiries: want 0 <= MinExpires (%d) <= MaxExpires (%d), DefaultExpires (%d) >= 0",
			o.MinExpires, o.MaxExpires, o.DefaultExpires)
	}
	if !cfgSafe(o.Realm) {
		return fmt.Errorf("realm %q: contains a character that cannot go into the cfg", o.Realm)
	}
	for name, u := range o.Users {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.!~*'+", r))
		}) {
			return fmt.Errorf("user %q: only letters, digits and -_.!~*'+ are supported", name)
		}
		if !cfgSafe(u.Password) {
			return fmt.Errorf("user %q: password contains a character that cannot go into the cfg", name)
		}
	}
	return nil
}

// cfgSafe reports whether s can go into a double-quoted cfg string as is.
func cfgSafe(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '$'
	})
}

type cfgUser struct {
	Name, Password string
	Proxy          bool
}

func renderCfg(o Options, port int, runDir string) ([]byte, error) {
	var users []cfgUser
	for _, name := range slices.Sorted(maps.Keys(o.Users)) {
		users = append(users, cfgUser{name, o.Users[name].Password, o.Users[name].Proxy})
	}
	var b bytes.Buffer
	err := cfgTemplate.Execute(&b, map[string]any{
		"Port": port, "RunDir": runDir, "Opts": o, "Users": users,
	})
	return b.Bytes(), err
}

// cfgTemplate is the registrar's whole configuration, with the user table, expiries, realm,
// algorithm and the 403 mode filled in.
var cfgTemplate = template.Must(template.New("kamailio.cfg").Parse(`#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:{{.Port}}
listen=tcp:127.0.0.1:{{.Port}}
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("ctl", "binrpc", "unix:{{.RunDir}}/kamailio_ctl")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "default_expires", {{.Opts.DefaultExpires}})
modparam("registrar", "min_expires", {{.Opts.MinExpires}})
modparam("registrar", "min_expires_mode", 1)
modparam("registrar", "max_expires", {{.Opts.MaxExpires}})
modparam("auth", "secret", "0123456789abcdef0123456789abcdef")
{{- if .Opts.AuthAlg}}
modparam("auth", "algorithm", "{{.Opts.AuthAlg}}")
{{- end}}
request_route {
    if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
    if (!is_method("REGISTER")) { sl_send_reply("405", "Method Not Allowed"); exit; }
    $var(pw) = $(ci{s.md5}) + "-unknown";   # unknown user: never matches
    $var(mode) = "www";
{{- if .Users}}
    switch ($tU) {                            # user table
{{- range .Users}}
        case "{{.Name}}": $var(pw) = "{{.Password}}";{{if .Proxy}} $var(mode) = "proxy";{{end}} break;
{{- end}}
    }
{{- end}}
    if ($var(mode) == "proxy") {
        pv_proxy_authenticate("{{.Opts.Realm}}", "$var(pw)", "0");
        $var(rc) = $rc;
        if ($var(rc) == 1 && $au != $tU) $var(rc) = -8;
    } else {
        pv_auth_check("{{.Opts.Realm}}", "$var(pw)", "0", "1");
        $var(rc) = $rc;
    }
    if ($var(rc) != 1) {
        xlog("L_INFO", "auth failed rc=$var(rc) au=$au tU=$tU\n");
{{- if .Opts.WrongPW403}}
        if ($var(rc) == -2) { sl_send_reply("403", "Forbidden"); exit; }
{{- end}}
        if ($var(mode) == "proxy") proxy_challenge("{{.Opts.Realm}}", "1");
        else auth_challenge("{{.Opts.Realm}}", "1");   # 1 = qop=auth
        exit;
    }
    consume_credentials();
    save("location");   # sends 200/423 itself; do not add sl_reply_error()
    exit;
}
`))

// lookBin finds a kamailio binary on PATH or in the sbin directories, which are not on
// every user's PATH.
func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
