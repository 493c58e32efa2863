// Package redistest runs a throwaway redis-server on a loopback port for
// tests: no persistence, killed and restarted on the same port at will.
//
// It is the Go twin of py_service/tests/support.py's RedisServer (the two
// languages' tests cannot share one helper); both find Debian's
// redis-server on PATH, which tools/bazel's chroot installs, and skip the
// test when it is absent.
package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cacheplatform/go_service/internal/polltest"
)

// Server is one redis-server process on 127.0.0.1:Port.
type Server struct {
	t          testing.TB
	executable string
	dir        string
	extraArgs  []string
	// Port is the loopback TCP port the server listens on, kept across Restart.
	Port int
	cmd  *exec.Cmd
}

// Start launches redis-server with extraArgs (e.g. "--maxmemory", "2mb")
// appended to its command line, waits up to 10 s for it to answer, and
// stops it when the test ends. It skips t when redis-server is not on PATH.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	executable, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
	}
	s := &Server{t: t, executable: executable, dir: t.TempDir(), extraArgs: extraArgs, Port: freePort(t)}
	t.Cleanup(s.Kill) // before start: a server that never answers is killed too
	s.start()
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
}

// URL is the server's redis:// URL, database 0.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Kill stops the server at once (SIGKILL), as a crash would; its data is
// gone. Killing a stopped server does nothing.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL ends a paused process too
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the server answering without closing its connections
// (SIGSTOP), as a Redis stuck in a long command or swapping would; Resume
// lets it go on.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pausing redis-server: %v", err)
	}
}

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("resuming redis-server: %v", err)
	}
}

// Restart starts a killed server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

func (s *Server) start() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", "redis.log",
	}, s.extraArgs...)
	cmd := exec.Command(s.executable, args...)
	// Its log goes to a file in the test's temporary directory, not the test output.
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	polltest.Until(s.t, 10*time.Second, "redis-server on "+s.Addr()+" to answer PING", func() bool {
		return ping(s.Addr()) == nil
	})
}

// ping sends PING and wants +PONG, within a second; or -NOAUTH from a server
// whose default user is off (a test of ACL users): it answers all the same.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if reply := string(buf[:n]); reply != "+PONG\r\n" && !strings.HasPrefix(reply, "-NOAUTH ") {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
