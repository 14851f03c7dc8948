// Package pgtest starts a throw-away PostgreSQL server for tests: initdb
// into a temporary directory, postgres on a free loopback port, stopped in
// the test's cleanup. As root (as in CI) the server runs as the user
// nobody, since PostgreSQL refuses to run as root. It is only for tests and
// benchmarks.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/testtool"
)

// Server is a running PostgreSQL.
type Server struct {
	Port int
	dir  string
	n    atomic.Int64
	kill func()
}

// Options tunes a server.
type Options struct {
	// Durable keeps fsync on (benchmarks of durable storage); tests turn
	// it off for speed.
	Durable bool
}

// Start starts a server for tb and stops it in tb.Cleanup. A missing
// PostgreSQL skips the test (or fails it with TAKEDOWN_STRICT=1).
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	initdb := testtool.Need(tb, "initdb", "postgresql-15")
	postgres := testtool.Need(tb, "postgres", "postgresql-15")

	// t.TempDir is private to root; a directory nobody can use.
	dir, err := os.MkdirTemp("", "takedown-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	asRoot := os.Geteuid() == 0
	if asRoot {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := func(name string, args ...string) *exec.Cmd {
		if asRoot {
			return exec.Command("runuser", append([]string{"-u", "nobody", "--", name}, args...)...)
		}
		return exec.Command(name, args...)
	}
	data := filepath.Join(dir, "data")
	if out, err := cmd(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	port := testtool.FreePort(tb, "tcp")
	args := []string{"-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=50", "-c", "shared_buffers=128MB"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	srv := cmd(postgres, args...)
	log, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		tb.Fatal(err)
	}
	srv.Stdout, srv.Stderr = log, log
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		tb.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	tb.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown; runuser passes it on.
		syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		log.Close()
	})
	s := &Server{Port: port, dir: dir, kill: func() {
		syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
		<-exited
	}}
	// Wait until it accepts connections (bounded: a server that does not
	// come up within a minute fails the test with its log).
	for i := 0; ; i++ {
		c, err := pgx.Connect(tb.Context(), s.DSN("postgres"))
		if err == nil {
			c.Close(context.Background())
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("postgres exited:\n%s", b)
		default:
		}
		if i > 600 {
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("postgres did not accept connections: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// Kill stops the server at once (SIGKILL), as a crash or a lost network
// would: for tests of what keeps working while the database is gone.
func (s *Server) Kill() { s.kill() }

// DSN is the connection string of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d", s.n.Add(1))
	c, err := pgx.Connect(tb.Context(), s.DSN("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(tb.Context(), "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return s.DSN(name)
}
