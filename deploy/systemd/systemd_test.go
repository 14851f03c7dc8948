// Package systemd holds takedown's systemd unit files; its test checks them
// with systemd-analyze verify against a binary built from this tree, and
// checks the confinement docs/deploy.md promises.
package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/testtool"
)

// installed is the binary path the units name.
const installed = "/usr/local/bin/takedown"

var units = []struct {
	file, role, data string
	caps             string // the capability bounding set and ambient set
	reload           bool   // ExecReload sends SIGHUP
}{
	{"takedown.service", "serve", "/var/lib/takedown", "CAP_NET_BIND_SERVICE", true},
	{"takedown-sensor.service", "sensor", "/var/lib/takedown-sensor", "CAP_NET_BIND_SERVICE", true},
	{"takedown-collector.service", "collector", "/var/lib/takedown", "", true},
}

// unitKeys reads a unit file into section.key → values (in order; a key
// may repeat).
func unitKeys(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", file, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

func one(t *testing.T, file string, keys map[string][]string, key string) string {
	t.Helper()
	v := keys[key]
	if len(v) != 1 {
		t.Fatalf("%s: %s set %d times, want once: %q", file, key, len(v), v)
	}
	return v[0]
}

// buildBinary builds cmd/takedown into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "takedown")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../cmd/takedown")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build takedown: %v\n%s", err, out)
	}
	return bin
}

// TestUnitsVerify runs systemd-analyze verify on copies of the units whose
// binary path names a takedown built from this tree (verify needs the
// ExecStart binary to exist), and fails on any warning about them, not
// only on errors (an unknown or misspelt key is only a warning).
func TestUnitsVerify(t *testing.T) {
	analyze := testtool.Need(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	var args []string
	for _, u := range units {
		b, err := os.ReadFile(u.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(installed+" ")) {
			t.Fatalf("%s does not run %s", u.file, installed)
		}
		p := filepath.Join(dir, u.file)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(installed), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.CommandContext(t.Context(), analyze, append([]string{"verify", "--man=no"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ours []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(line, "takedown") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The verifier must be able to fail here: a misspelt key is reported.
	bad := filepath.Join(dir, "takedown-bad.service")
	b, _ := os.ReadFile(args[0])
	os.WriteFile(bad, bytes.Replace(b, []byte("ProtectHome=yes"), []byte("ProtectHome=yess"), 1), 0o644)
	if out, _ := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", bad).CombinedOutput(); !strings.Contains(string(out), "takedown-bad.service") {
		t.Fatalf("systemd-analyze verify says nothing of a bad value: %q", out)
	}
}

// TestUnitsConfinement: each unit runs as the takedown user with at most
// CAP_NET_BIND_SERVICE, the data dir as its only writable path, the
// hardening docs/deploy.md lists, and an ExecStart whose flags the binary
// accepts.
func TestUnitsConfinement(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			k := unitKeys(t, u.file)
			want := map[string]string{
				"Service.User": "takedown", "Service.Group": "takedown",
				"Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict", "Service.ProtectHome": "yes",
				"Service.PrivateTmp": "yes", "Service.PrivateDevices": "yes", "Service.UMask": "0077",
				"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "Service.RestrictSUIDSGID": "yes",
				"Service.StateDirectoryMode": "0700", "Service.ReadWritePaths": u.data,
				"Service.StateDirectory":        strings.TrimPrefix(u.data, "/var/lib/"),
				"Service.CapabilityBoundingSet": u.caps, "Service.AmbientCapabilities": u.caps,
				"Install.WantedBy": "multi-user.target",
			}
			for key, v := range want {
				if got := one(t, u.file, k, key); got != v {
					t.Errorf("%s = %q, want %q", key, got, v)
				}
			}
			if !slices.Contains(k["Service.SystemCallFilter"], "@system-service") {
				t.Errorf("SystemCallFilter %q lacks @system-service", k["Service.SystemCallFilter"])
			}
			if _, ok := k["Service.DynamicUser"]; ok {
				t.Error("DynamicUser set: the units run as the static takedown user (docs/deploy.md)")
			}
			reload := k["Service.ExecReload"]
			if u.reload != (len(reload) == 1 && reload[0] == "/bin/kill -HUP $MAINPID") {
				t.Errorf("ExecReload %q; want SIGHUP: %v", reload, u.reload)
			}
			env := map[string]string{}
			for _, e := range k["Service.Environment"] {
				for kv := range strings.FieldsSeq(e) {
					n, v, _ := strings.Cut(kv, "=")
					env[n] = v
				}
			}
			if env["TAKEDOWN_DATA"] != u.data {
				t.Errorf("TAKEDOWN_DATA=%q, want the state directory %s", env["TAKEDOWN_DATA"], u.data)
			}
			// ExecStart (and ExecStartPre): the binary takes its role and
			// flags; --help after them exits 0 only if every flag is known.
			for _, key := range []string{"Service.ExecStartPre", "Service.ExecStart"} {
				for _, line := range k[key] {
					fields := strings.Fields(os.Expand(line, func(n string) string { return env[n] }))
					if fields[0] != installed || fields[1] != u.role {
						t.Fatalf("%s = %q: want %s %s …", key, line, installed, u.role)
					}
					cmd := exec.CommandContext(t.Context(), bin, append(fields[1:], "--help")...)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("%s: takedown %v --help: %v\n%s", key, fields[1:], err, out)
					}
				}
			}
		})
	}
	// The sysusers line makes the user the units name.
	b, err := os.ReadFile("takedown.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u takedown - "[^"]+" /var/lib/takedown /usr/sbin/nologin$`).Match(b) {
		t.Errorf("takedown.sysusers does not declare the takedown user:\n%s", b)
	}
}
