//go:build bench

package api_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/testtool"
)

// TestWrkAPI measures GET /api/v1/stats with a bearer token (token lookup,
// stats computation, JSON) against nginx serving the same document as a
// static file, with wrk on core 0; run it through bench/api/run.sh, which
// pins this process to core 1 with GOMAXPROCS=1. It prints
// "api_stats project=<rps> anchor=nginx:<rps> ratio=<r>" and writes wrk's
// output under bench/results/.
func TestWrkAPI(t *testing.T) {
	nginx := testtool.Need(t, "nginx", "nginx")
	wrk := testtool.Need(t, "wrk", "wrk")
	taskset := testtool.Need(t, "taskset", "util-linux")
	results, err := filepath.Abs("../../bench/results")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		t.Fatal(err)
	}
	f := apitest.New(t)
	h := api.New(api.Options{Registry: f.DB, Events: f.Events, Stats: f.Stats, Tokens: f.DB, Now: func() time.Time { return apitest.Now }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	auth := "Authorization: Bearer " + f.Secrets["analyst"]

	// The anchor serves the project's own answer as a file.
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+f.Secrets["analyst"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stats.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testtool.FreePort(t, "tcp")
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location /api/v1/stats { default_type application/json; alias %[1]s/stats.json; }
  }
}
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ng := exec.Command(taskset, "-c", "1", nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	ng.Stderr = os.Stderr
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ng.Process.Kill(); ng.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("nginx did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rps := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	run := func(name, url string) float64 {
		out, err := exec.Command(taskset, "-c", "0", wrk, "-t1", "-c16", "-d5s", "-H", auth, url).CombinedOutput()
		_ = os.WriteFile(filepath.Join(results, "api-"+name+".txt"), out, 0o644)
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		m := rps.FindSubmatch(out)
		if m == nil {
			t.Fatalf("wrk output:\n%s", out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	a := run("stats-nginx", fmt.Sprintf("http://127.0.0.1:%d/api/v1/stats", port))
	p := run("stats-takedown", "http://"+ln.Addr().String()+"/api/v1/stats")
	fmt.Printf("api_stats project=%.0f anchor=nginx:%.0f ratio=%.3f\n", p, a, p/a)
}
