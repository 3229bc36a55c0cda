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
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
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
