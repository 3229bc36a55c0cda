// Package kamailio starts a throwaway Kamailio registrar for end-to-end tests: digest
// authentication (401, or 407 per user), in-memory usrloc, 423 below MinExpires, on a free
// port of 127.0.0.1 over UDP and TCP, with a fresh runtime directory. Its whole
// configuration is cfgTemplate.
//
// A test that calls Start is skipped when kamailio (or kamcmd) is not installed, unless
// CI=true, where it fails.
package kamailio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"sipreg.dev/tools/internal/syncbuf"
)

const (
	startAttempts = 5                // new ports tried when the chosen one is taken
	readyTimeout  = 15 * time.Second // from exec to the first 200 OK to OPTIONS
	stopTimeout   = 5 * time.Second  // from SIGTERM to exit, before SIGKILL
	kamcmdTimeout = 10 * time.Second
)

// User is one account of the registrar's user table.
type User struct {
	// Password is the digest password. It may not contain `"`, `\`, `$` or control
	// characters (it is written into the cfg).
	Password string
	// Proxy makes the registrar challenge this user with 407 Proxy-Authenticate (answered
	// by Proxy-Authorization) instead of 401 WWW-Authenticate.
	Proxy bool
}

// Options configures an Instance. The zero value gives a registrar with no users.
type Options struct {
	// Users maps a user name (the To user of a REGISTER, and the digest username) to its
	// account. Unknown users are challenged forever (or get 403 with WrongPW403).
	Users map[string]User
	// AuthAlg is the digest algorithm offered: "" (MD5, no algorithm parameter), "MD5" or
	// "SHA-256". One instance offers one algorithm only.
	AuthAlg string
	// WrongPW403 answers 403 Forbidden to wrong credentials instead of a new challenge.
	WrongPW403 bool
	// MinExpires is the shortest expiry accepted; shorter ones get 423 with Min-Expires.
	// Default 60.
	MinExpires int
	// MaxExpires caps the granted expiry. Default 3600.
	MaxExpires int
	// DefaultExpires is granted when a REGISTER asks for none. Default 300.
	DefaultExpires int
	// Realm is the digest realm. Default "test.local".
	Realm string
}

// Instance is a running Kamailio. It is stopped by the test's cleanup.
type Instance struct {
	// Addr is the registrar's host:port (127.0.0.1), the same port for UDP and TCP.
	Addr string
	// Realm is the digest realm the registrar challenges with.
	Realm string

	runDir string
	kamcmd string
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // the process's exit error, valid once done is closed
}

// Binding is one contact of an address-of-record, as usrloc holds it.
type Binding struct {
	// Address is the Contact URI, e.g. "sip:alice@127.0.0.1:5062;transport=udp".
	Address string
	// Expires is the number of seconds left; -1 for a permanent binding, 0 for an expired
	// or deleted one.
	Expires int
	// CallID is the Call-ID of the REGISTER that created or last refreshed the binding.
	CallID string
	// CSeq is the CSeq number of that REGISTER.
	CSeq int
	// UserAgent is its User-Agent header, "" when it had none.
	UserAgent string
}

// Start writes a cfg from opts, starts `kamailio -DD -E` on a free port of 127.0.0.1 and
// returns once it answers OPTIONS with 200 over UDP and then over TCP. The instance is
// stopped (SIGTERM, then SIGKILL to its process group after 5 s) when the test ends; its
// log is written to the test output if the test failed.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	bin, kamcmd := lookBin("kamailio"), lookBin("kamcmd")
	if bin == "" || kamcmd == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("kamailio: kamailio or kamcmd is not installed (apt-get install kamailio); CI=true, so failing")
		}
		t.Skip("kamailio: kamailio or kamcmd is not installed; skipping (set CI=true to fail instead)")
	}
	if err := opts.setDefaults(); err != nil {
		t.Fatalf("kamailio: %v", err)
	}

	var lastErr error
	for range startAttempts {
		port, err := pickPort()
		if err != nil {
			t.Fatalf("kamailio: pick a free port: %v", err)
		}
		inst, err := start(t, bin, kamcmd, opts, port)
		if err == nil {
			return inst
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
		t.Logf("kamailio: port %d was taken, trying another one", port)
	}
	t.Fatalf("kamailio: start: %v", lastErr)
	return nil
}

// pickPort finds a port free on 127.0.0.1 for both UDP and TCP. It is a variable so that
// a test can make it return a taken port.
var pickPort = func() (int, error) {
	for range 50 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free for both UDP and TCP")
}

var errPortInUse = errors.New("address already in use")

// start makes one attempt on port. It fails with errPortInUse when kamailio exits with
// status 255 because the port is taken (its log then says "already in use").
func start(t testing.TB, bin, kamcmd string, opts Options, port int) (*Instance, error) {
	runDir, err := runDir(t)
	if err != nil {
		return nil, err
	}
	inst := &Instance{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Realm:  opts.Realm,
		runDir: runDir,
		kamcmd: kamcmd,
		log:    &syncbuf.Buffer{},
		done:   make(chan struct{}),
	}
	cfg, err := renderCfg(opts, port, runDir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(runDir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, err
	}

	inst.cmd = exec.Command(bin, "-DD", "-E", "-m", "8", "-M", "2",
		"-Y", runDir, "-P", filepath.Join(runDir, "kamailio.pid"), "-f", cfgPath)
	inst.cmd.Stdout = inst.log
	inst.cmd.Stderr = inst.log
	// Its own process group, so that a stuck instance's workers can be killed with it.
	inst.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Workers share the log pipe; do not wait for them forever once the main process ends.
	inst.cmd.WaitDelay = stopTimeout
	if err := inst.cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	go func() {
		inst.err = inst.cmd.Wait()
		close(inst.done)
	}()

	if err := inst.waitReady(); err != nil {
		inst.stop()
		var exitErr *exec.ExitError
		if errors.As(inst.err, &exitErr) && exitErr.ExitCode() == 255 && strings.Contains(inst.Log(), "already in use") {
			return nil, fmt.Errorf("port %d: %w", port, errPortInUse)
		}
		return nil, fmt.Errorf("%w; exit: %v; log:\n%s", err, inst.err, inst.Log())
	}
	t.Cleanup(func() {
		if err := inst.stop(); err != nil {
			// Not the test's subject: say so, without failing it.
			t.Logf("kamailio: stop: %v", err)
		}
		if t.Failed() {
			t.Logf("kamailio log (%s):\n%s", inst.Addr, inst.Log())
		}
	})
	return inst, nil
}

// runDir is a fresh directory under t.TempDir(), or under the system temp directory when
// that path is too long for the ctl unix socket (sun_path holds 108 bytes).
func runDir(t testing.TB) (string, error) {
	dir := t.TempDir()
	if len(dir)+len("/kamailio_ctl") < 100 {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", "kam")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}

// waitReady sends OPTIONS over UDP until a 200 arrives, the process exits or
// readyTimeout passes, then one OPTIONS over TCP, which must be answered 200.
func (i *Instance) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	conn, err := net.Dial("udp", i.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	buf := make([]byte, 4096)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		if _, err := conn.Write(optionsRequest("udp", i.Addr, local, n)); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if m, err := conn.Read(buf); err == nil && bytes.HasPrefix(buf[:m], []byte("SIP/2.0 200 ")) {
			break
		}
		// Not yet (no answer, or ICMP port unreachable while kamailio starts): poll again
		// on the next tick, unless it has exited or the deadline has passed.
		select {
		case <-i.done:
			return errors.New("kamailio exited before it was ready")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 OK to OPTIONS within %v", readyTimeout)
		}
	}
	// The TCP processes are forked last: once one answers, kamailio has finished
	// starting (a SIGTERM during start-up can leave late children running).
	c, err := net.DialTimeout("tcp", i.Addr, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("tcp: %w", err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(optionsRequest("tcp", i.Addr, c.LocalAddr().String(), 1)); err != nil {
		return fmt.Errorf("tcp: %w", err)
	}
	status := make([]byte, len("SIP/2.0 200 "))
	if _, err := io.ReadFull(c, status); err != nil {
		return fmt.Errorf("tcp: no answer to OPTIONS: %w", err)
	}
	if string(status) != "SIP/2.0 200 " {
		return fmt.Errorf("tcp: answer to OPTIONS: %q", status)
	}
	return nil
}

// optionsRequest is the n-th OPTIONS probe from local to addr over transport.
func optionsRequest(transport, addr, local string, n int) []byte {
	return fmt.Appendf(nil, "OPTIONS sip:%[1]s;transport=%[2]s SIP/2.0\r\n"+
		"Via: SIP/2.0/%[3]s %[4]s;branch=z9hG4bK-ready-%[2]s-%[5]d;rport\r\n"+
		"From: <sip:ready@127.0.0.1>;tag=ready\r\n"+
		"To: <sip:%[1]s>\r\n"+
		"Call-ID: ready-%[2]s-%[5]d@%[4]s\r\n"+
		"CSeq: %[5]d OPTIONS\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n", addr, transport, strings.ToUpper(transport), local, n)
}

// stop sends SIGTERM to the main process and waits for it to exit, with SIGKILL to its
// process group after stopTimeout. It returns an error when kamailio had to be killed.
func (i *Instance) stop() error {
	select {
	case <-i.done:
		return nil
	default:
	}
	pid := i.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-i.done:
		return nil
	case <-timer.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group this package created
		<-i.done
		return fmt.Errorf("no exit %v after SIGTERM: killed", stopTimeout)
	}
}

// Log returns what kamailio has written to stdout and stderr so far.
func (i *Instance) Log() string {
	return i.log.String()
}

// Bindings returns the contacts bound to aor (the user part; usrloc runs without
// domains), via `kamcmd ul.lookup location <aor>`. An unknown AOR gives an empty slice
// and no error.
func (i *Instance) Bindings(aor string) ([]Binding, error) {
	out, err := i.rpc("ul.lookup", "location", "s:"+aor)
	if err != nil {
		if strings.Contains(err.Error(), "AOR not found") {
			return []Binding{}, nil
		}
		return nil, err
	}
	all, err := parseUL(out)
	if err != nil {
		return nil, err
	}
	if b := all[aor]; b != nil {
		return b, nil
	}
	return []Binding{}, nil
}

// Dump returns every AOR with its contacts, via `kamcmd ul.dump`.
func (i *Instance) Dump() (map[string][]Binding, error) {
	out, err := i.rpc("ul.dump")
	if err != nil {
		return nil, err
	}
	return parseUL(out)
}

// rpc runs one kamcmd command on the instance's ctl socket. kamcmd exits 0 on RPC
// errors and prints "error: <code> - <text>", which becomes the returned error.
func (i *Instance) rpc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kamcmdTimeout)
	defer cancel()
	argv := append([]string{"-s", "unix:" + filepath.Join(i.runDir, "kamailio_ctl")}, args...)
	out, err := exec.CommandContext(ctx, i.kamcmd, argv...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return "", fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, text)
	}
	if strings.HasPrefix(strings.ToLower(text), "error:") {
		return "", fmt.Errorf("kamcmd %s: %s", strings.Join(args, " "), text)
	}
	return text, nil
}

// parseUL reads the text output of ul.dump and ul.lookup: "AoR: <aor>" lines, each
// followed by "Contact: { ... }" blocks of "Key: value" lines.
func parseUL(out string) (map[string][]Binding, error) {
	res := make(map[string][]Binding)
	aor := ""
	var cur *Binding
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "AoR: "):
			aor = strings.TrimPrefix(line, "AoR: ")
			if res[aor] == nil {
				res[aor] = []Binding{}
			}
		case line == "Contact: {":
			if aor == "" {
				return nil, fmt.Errorf("line %d: contact outside an AoR", n+1)
			}
			cur = &Binding{}
		case line == "}" && cur != nil:
			res[aor] = append(res[aor], *cur)
			cur = nil
		case cur != nil:
			key, value, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			if value == "[not set]" {
				value = ""
			}
			switch key {
			case "Address":
				cur.Address = value
			case "Call-ID":
				cur.CallID = value
			case "User-Agent":
				cur.UserAgent = value
			case "CSeq":
				cseq, err := strconv.Atoi(value)
				if err != nil {
					return nil, fmt.Errorf("line %d: CSeq %q: %w", n+1, value, err)
				}
				cur.CSeq = cseq
			case "Expires":
				switch value {
				case "permanent":
					cur.Expires = -1
				case "expired", "deleted":
					cur.Expires = 0
				default:
					exp, err := strconv.Atoi(value)
					if err != nil {
						return nil, fmt.Errorf("line %d: Expires %q: %w", n+1, value, err)
					}
					cur.Expires = exp
				}
			}
		}
	}
	if cur != nil {
		return nil, errors.New("unterminated Contact block")
	}
	return res, nil
}

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
