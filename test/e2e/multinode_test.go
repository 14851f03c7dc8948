package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown/takedown/internal/dga"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/testtool"
)

// TestMultiNode is issue 15's whole deployment on loopback, every node a
// process of the real binary configured from deploy/examples: a
// three-node NATS JetStream cluster, one PostgreSQL, two sensors, two
// collectors and two dashboard/API nodes sending the daily reports to a
// real SMTP server (OpenSMTPD).
//
// An order (fixed names and a DGA) and its history (the simulator's past
// days, imported) are in the store before the nodes start; two simulators
// then beacon live to the two sensors (PROXY v2 sources). During the run a
// collector and a JetStream node (the stream's leader: see below) are
// killed with SIGKILL, then the evidence writer (the API node holding the
// lease "evidence", which is restarted once the other node took the lease
// over), and a new order imported on an API node must be answered by both
// sensors within a second of its creation. Afterwards:
//   - the figures of yesterday, of the last seven days and of today equal
//     the simulators' truth exactly, per country and per family, through
//     `takedown stats` and through both API nodes;
//   - every event the sensors accepted is in the stream, and stored
//     exactly once (the stream's event IDs are the store's, and the
//     counters agree);
//   - each subscriber has exactly one report for yesterday in the SMTP
//     mailbox, although both API nodes' schedulers and then both nodes'
//     `notify send` tried to send it at the same time;
//   - the evidence (issue 15's assertion): the deployment has one log,
//     whose entries and key are in the store. A package exported on
//     either API node (from its replica) holds every stored event exactly
//     once and verifies against the one key; the package of the case holds
//     every stored event of the case once, the collectors' live events
//     and the imported history alike; and the log after the takeover
//     extends the checkpoint the killed writer signed (a consistency
//     proof from the new writer's replica).
func TestMultiNode(t *testing.T) {
	natsBin := testtool.Need(t, "nats-server", "nats-server")
	smtp := mnStartOpenSMTPD(t)
	mnAwayFromMidnight(t)
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	started := time.Now()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	yesterday := today.AddDate(0, 0, -1)

	// The NATS cluster and, as its operator would, the replicated stream
	// (a sensor or collector creates it with one replica when missing).
	cluster := mnStartNATSCluster(t, natsBin, dir)
	var urlList []string
	for _, n := range cluster {
		urlList = append(urlList, n.url)
	}
	urls := strings.Join(urlList, ",")
	nc, js, err := natsbus.Connect(urls, nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	mnWait(t, "a replicated stream (JetStream meta leader)", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := natsbus.EnsureStream(ctx, js, natsbus.StreamOptions{Replicas: 3})
		return err == nil
	})

	// Every node's configuration from the shipped examples.
	var sensors, collectors, apis []mnNode
	for i := range 2 {
		s := mnNode{conf: filepath.Join(dir, fmt.Sprintf("sensor-%d.yaml", i)), data: filepath.Join(dir, fmt.Sprintf("sensor-%d", i)),
			dns: fmt.Sprintf("127.0.0.1:%d", testtool.FreeBothPort(t)), http: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))}
		mnConfig(t, "sensor.yaml", s.conf, map[string]string{"TAKEDOWN_DATA": s.data, "TAKEDOWN_DB": dsn,
			"SENSOR_DNS": s.dns, "SENSOR_HTTP": s.http, "SENSOR_UDP": fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp")),
			"PROXY_FROM": "127.0.0.1"})
		sensors = append(sensors, s)
		c := mnNode{conf: filepath.Join(dir, fmt.Sprintf("collector-%d.yaml", i)), data: filepath.Join(dir, fmt.Sprintf("collector-%d", i))}
		mnConfig(t, "collector.yaml", c.conf, map[string]string{"TAKEDOWN_DATA": c.data, "TAKEDOWN_DB": dsn})
		collectors = append(collectors, c)
		a := mnNode{conf: filepath.Join(dir, fmt.Sprintf("api-%d.yaml", i)), data: filepath.Join(dir, fmt.Sprintf("api-%d", i)),
			web: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))}
		// 00:00: each API node's scheduler sends yesterday's reports as
		// soon as it starts, both at once.
		mnConfig(t, "api.yaml", a.conf, map[string]string{"TAKEDOWN_DATA": a.data, "TAKEDOWN_DB": dsn,
			"API_LISTEN": a.web, "NOTIFY_AT": "00:00", "SMTP_ADDR": smtp.addr})
		apis = append(apis, a)
	}
	admin := apis[0].conf

	// The order, its subscribers and tokens, and its history.
	fixed := []string{"c2-mn-alpha.example", "c2-mn-bravo.example", "c2-mn-charlie.example"}
	orderFile := filepath.Join(dir, "order.txt")
	os.WriteFile(orderFile, []byte(strings.Join(fixed, "\n")+"\ndga:newgoz?tlds=example,test&count=20&margin=6h\n"), 0o600)
	mustRun(t, nil, "--config", admin, "order", "import", orderFile, "--case", "mn-1", "--court", "W.D. Wash.", "--allow-reserved",
		"--effective", today.AddDate(0, 0, -30).Format(time.DateOnly), "--expires", today.AddDate(1, 0, 0).Format(time.DateOnly))
	subscribers := map[string]string{"cert-in": "IN", "cert-ru": "RU"} // id: its network
	for id, cc := range subscribers {
		mustRun(t, nil, "--config", admin, "subscriber", "add", id, "--org", strings.ToUpper(id), "--contacts", id+"@reports.example", "--networks", cc)
	}
	analyst := mnToken(t, admin, "--role", "analyst")
	certIN := mnToken(t, admin, "--role", "network", "--networks", "IN")
	history, truthPath := filepath.Join(dir, "history.jsonl"), filepath.Join(dir, "truth.json")
	mustRun(t, nil, "--config", admin, "simulate", "--case", "mn-1", "--seed", "15", "--bots", "400", "--days", "8",
		"--history", history, "--truth", truthPath, "--quiet")
	mustRun(t, nil, "--config", admin, "events", "import", "--format", "jsonl", "--quiet", history)
	var truth truthFile
	if b, err := os.ReadFile(truthPath); err != nil || json.Unmarshal(b, &truth) != nil || len(truth.Daily) == 0 || truth.Last == nil {
		t.Fatalf("truth: %v\n%.400s", err, b)
	}
	day := truth.Daily[len(truth.Daily)-1]
	if !day.From.Equal(yesterday) || day.Families["newgoz"] == 0 || day.Families["rustock"] == 0 {
		t.Fatalf("the history's last day is %s with families %v; want yesterday with rustock and newgoz (the order's DGA)", day.From, day.Families)
	}
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	healthBefore := mnHealth(t, db)
	if n := mnCount(t, db, `SELECT count(*) FROM events`); healthBefore.stored != uint64(n) {
		t.Fatalf("after the history import: event_health stored %d, %d raw rows", healthBefore.stored, n)
	}

	// The nodes. The API nodes start together: both schedulers send
	// yesterday's reports at once.
	var procs []*mnProc
	for _, n := range cluster {
		procs = append(procs, n.proc)
	}
	var colProcs, sensorProcs []*mnProc
	for i, c := range collectors {
		p := mnStart(t, fmt.Sprintf("collector-%d", i), binary, "--config", c.conf, "collector", "--nats", urls)
		colProcs, procs = append(colProcs, p), append(procs, p)
	}
	for i, s := range sensors {
		p := mnStart(t, fmt.Sprintf("sensor-%d", i), binary, "--config", s.conf, "sensor", "--nats", urls, "--sensor", fmt.Sprintf("sink-%d", i))
		sensorProcs, procs = append(sensorProcs, p), append(procs, p)
	}
	var apiProcs []*mnProc
	for i, a := range apis {
		p := mnStart(t, fmt.Sprintf("api-%d", i), binary, "--config", a.conf, "serve")
		apiProcs, procs = append(apiProcs, p), append(procs, p)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				// TAKEDOWN_E2E_LOGS=DIR keeps every node's whole log.
				if d := os.Getenv("TAKEDOWN_E2E_LOGS"); d != "" {
					os.MkdirAll(d, 0o700)
					os.WriteFile(filepath.Join(d, p.name+".log"), []byte(p.log.String()), 0o600)
				}
				t.Logf("--- %s (last 6000 bytes):\n%s", p.name, mnTail(p.log.String(), 6000))
			}
		}
	})
	for _, p := range colProcs {
		p.waitLog(t, "collector consuming", 30*time.Second)
	}
	var sensorDNS []string
	for i, p := range sensorProcs {
		p.waitLog(t, "sensor publishing", 30*time.Second)
		sensorDNS = append(sensorDNS, sensors[i].dns)
	}
	// Both sinkholes answer the order's names (DNS probes from 127.0.0.1:
	// resolver events, never counted as infected).
	mnWait(t, "both sensors answer the order", 30*time.Second, func() bool {
		for _, a := range sensorDNS {
			if ok, _ := sinkholed(a, fixed[0]); !ok {
				return false
			}
		}
		return true
	})
	for i, a := range apis {
		mnWait(t, "API node "+a.web, 30*time.Second, func() bool {
			apiProcs[i].mustRun(t)
			c, err := net.Dial("tcp", a.web)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}

	// The live run: two simulated populations in disjoint countries (so
	// their addresses are disjoint and the truth of today is the sum of
	// both reports), each beaconing to one sensor over HTTP and DNS with
	// PROXY v2 sources.
	names := filepath.Join(dir, "names.txt")
	os.WriteFile(names, []byte(strings.Join(fixed, "\n")+"\n"), 0o600)
	const beacons = 1500
	sims := []*mnSim{
		mnSimulate(t, filepath.Join(dir, "sim-0"), sensors[0], "IN=3,RU=2,US=1", "151", beacons, names),
		mnSimulate(t, filepath.Join(dir, "sim-1"), sensors[1], "BR=2,DE=1,FR=1", "152", beacons, names),
	}

	// A collector dies mid-stream (its unacknowledged batch comes back
	// after the consumer's ack wait)…
	time.Sleep(2 * time.Second)
	colProcs[0].kill()
	// …then a JetStream node: the stream's leader, the harder loss (a
	// publish in flight to it is never acknowledged; the sensors time it
	// out and publish it again until a new leader is elected).
	// TAKEDOWN_E2E_KILL_STREAM_FOLLOWER=1 kills a follower instead.
	time.Sleep(2 * time.Second)
	leader, followers := mnStreamPeers(t, js)
	victim := leader
	if os.Getenv("TAKEDOWN_E2E_KILL_STREAM_FOLLOWER") == "1" {
		victim = followers[0]
	}
	var killed *mnNATS
	for _, n := range cluster {
		if n.name == victim {
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("stream peer %q is none of the cluster's nodes", victim)
	}
	killed.proc.kill()
	t.Logf("killed collector-0 and JetStream node %s (stream leader %s)", victim, leader)

	// …and the evidence writer, the API node holding the lease "evidence",
	// right after it signed a checkpoint: the other API node must take
	// the lease over and extend that very log. The killed node is then
	// restarted (its replica catches up from the store).
	w := mnEvidenceWriter(t, db, apiProcs, 30*time.Second)
	deadCP := mustRun(t, nil, "--config", apis[w].conf, "evidence", "checkpoint").stdout
	apiProcs[w].kill()
	killedAt := time.Now()
	other := 1 - w
	if got := mnEvidenceWriter(t, db, apiProcs, 45*time.Second); got != other {
		t.Fatalf("the evidence lease went to API node %d after node %d was killed", got, w)
	}
	t.Logf("killed the evidence writer %s; %s took the lease over %s later", apis[w].web, apis[other].web, time.Since(killedAt).Round(time.Second))
	apiProcs[w] = mnStart(t, fmt.Sprintf("api-%d-restarted", w), binary, "--config", apis[w].conf, "serve")
	procs = append(procs, apiProcs[w])

	// A new order on the other API node's store, meanwhile: both sensors
	// answer its names within a second.
	time.Sleep(2 * time.Second)
	late := "c2-mn-late.example"
	lateSpec := "newgoz?key=0badc0de&tlds=example,test&count=10&margin=6h"
	sp, err := dga.Parse(lateSpec)
	if err != nil {
		t.Fatal(err)
	}
	lateNames := []string{late, sp.Domains(today)[3]}
	for _, a := range sensorDNS {
		for _, n := range lateNames {
			if ok, err := sinkholed(a, n); ok || err != nil {
				t.Fatalf("%s: %s seized before its order (err %v)", a, n, err)
			}
		}
	}
	// Each sensor is asked every 100 ms from before the import; the time
	// it first answers each name is measured from the order's creation
	// time in the store (taken before the import commits, so the bound is
	// on the safe side, and free of the command's own start-up).
	type firstAnswer struct {
		sensor, name string
		at           time.Time
		err          error
	}
	// 10 queries a second per name and sensor: far below the sensors'
	// per-source budget (whose summaries would change the counts below)
	// and DNS rate limits.
	answers := make(chan firstAnswer, len(sensorDNS)*len(lateNames))
	for _, a := range sensorDNS {
		go func() {
			pending := slices.Clone(lateNames)
			var err error
			for deadline := time.Now().Add(20 * time.Second); len(pending) > 0; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					for _, n := range pending {
						answers <- firstAnswer{a, n, time.Time{}, fmt.Errorf("not answered within 20 s (last error %v)", err)}
					}
					return
				}
				pending = slices.DeleteFunc(pending, func(n string) bool {
					var ok bool
					if ok, err = sinkholed(a, n); ok {
						answers <- firstAnswer{a, n, time.Now(), nil}
					}
					return ok
				})
			}
		}()
	}
	mustRun(t, []byte(late+"\ndga:"+lateSpec+"\n"), "--config", apis[1].conf, "order", "import", "-", "--case", "mn-2", "--court", "W.D. Wash.",
		"--allow-reserved", "--effective", yesterday.Format(time.DateOnly), "--expires", today.AddDate(1, 0, 0).Format(time.DateOnly))
	var orders []struct {
		Case    string    `json:"case"`
		Created time.Time `json:"created"`
	}
	if r := mustRun(t, nil, "--config", admin, "order", "list", "--json"); json.Unmarshal([]byte(r.stdout), &orders) != nil {
		t.Fatalf("order list: %s", r.stdout)
	}
	var created time.Time
	for _, o := range orders {
		if o.Case == "mn-2" {
			created = o.Created
		}
	}
	if created.IsZero() {
		t.Fatalf("the new order is not in the shared registry: %v", orders)
	}
	var slowest time.Duration
	for range cap(answers) {
		fa := <-answers
		if fa.err != nil {
			t.Fatalf("sensor %s, %s: %v", fa.sensor, fa.name, fa.err)
		}
		d := fa.at.Sub(created)
		if d > time.Second {
			t.Errorf("sensor %s answered %s %s after its order was created, more than a second", fa.sensor, fa.name, d.Round(time.Millisecond))
		}
		slowest = max(slowest, d)
	}
	t.Logf("the new order answered by both sensors within %s of its creation", slowest.Round(time.Millisecond))

	// The run ends; what the simulators saw answered is today's truth.
	live := truthPeriod{From: today, To: today.AddDate(0, 0, 1), Countries: map[string]struct {
		UniqueIPs int `json:"unique_ips"`
	}{}}
	for _, s := range sims {
		rep := s.wait(t, 90*time.Second)
		if rep.Failed != 0 || rep.HTTP == 0 || rep.DNS == 0 {
			t.Fatalf("%s: %d http, %d dns answered, %d failed (%s): the truth of today is exact only when every beacon was answered\n%s",
				s.name, rep.HTTP, rep.DNS, rep.Failed, rep.FirstError, s.log.String())
		}
		for cc, n := range rep.UniqueIPs {
			if live.Countries[cc].UniqueIPs != 0 {
				t.Fatalf("country %s in both simulated populations", cc)
			}
			live.Countries[cc] = struct {
				UniqueIPs int `json:"unique_ips"`
			}{n}
			live.UniqueIPs += n
		}
		t.Logf("%s: %d http and %d dns beacons answered, %d addresses", s.name, rep.HTTP, rep.DNS, rep.total())
	}
	live.Families = map[string]int{"rustock": live.UniqueIPs}

	// The sensors stop (publishing what they queued); the surviving
	// collector drains the stream, the killed one's batch included.
	for _, p := range sensorProcs {
		p.stop(t, 30*time.Second)
	}
	drainStart := time.Now()
	var lastSeen string // what the last look at the consumer saw, for a failure
	drained := func() bool {
		colProcs[1].mustRun(t)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, natsbus.DefaultStream)
		if err != nil {
			lastSeen = "stream info: " + err.Error()
			return false
		}
		c, err := s.Consumer(ctx, natsbus.DefaultConsumer)
		if err != nil {
			lastSeen = "consumer: " + err.Error()
			return false
		}
		ci, err := c.Info(ctx)
		if err != nil {
			lastSeen = "consumer info: " + err.Error()
			return false
		}
		b, _ := json.Marshal(ci)
		lastSeen = "consumer info " + string(b)
		return ci.NumPending == 0 && ci.NumAckPending == 0
	}
	for deadline := time.Now().Add(150 * time.Second); !drained(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			var warns []string
			for l := range strings.Lines(colProcs[1].log.String()) {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					warns = append(warns, l)
				}
			}
			t.Fatalf("waited 150 s for the stream drained into the store; last seen: %s\ncollector-1's last warnings:\n%s", lastSeen, strings.Join(warns[max(0, len(warns)-15):], ""))
		}
	}
	t.Logf("stream drained %s after the sensors stopped", time.Since(drainStart).Round(time.Millisecond))
	if !time.Now().UTC().Truncate(24 * time.Hour).Equal(today) {
		t.Fatal("the run crossed UTC midnight: today's truth no longer applies")
	}

	// Exactly once: the stream's event IDs are the store's live rows.
	streamIDs, streamMsgs := mnStreamIDs(t, js)
	storeIDs := mnStoredIDs(t, db, `SELECT id FROM events WHERE day >= $1`, store.DayOf(today))
	var missing, extra, twice int
	for id := range streamIDs {
		if storeIDs[id] == 0 {
			missing++
		}
	}
	for id, n := range storeIDs {
		if !streamIDs[id] {
			extra++
		}
		if n > 1 {
			twice++
		}
	}
	if uint64(len(streamIDs)) != streamMsgs || missing != 0 || extra != 0 || twice != 0 {
		t.Errorf("stream: %d messages, %d distinct event IDs; store: %d live rows; %d of the stream's events not stored, %d stored events not in the stream, %d stored twice",
			streamMsgs, len(streamIDs), len(storeIDs), missing, extra, twice)
	}
	health := mnHealth(t, db)
	total := mnCount(t, db, `SELECT count(*) FROM events`)
	distinct := mnCount(t, db, `SELECT count(DISTINCT id) FROM events`)
	if health.stored-healthBefore.stored != streamMsgs || uint64(total) != health.stored || distinct != total {
		t.Errorf("event_health stored %d (%d before the live run), %d raw rows (%d distinct IDs); the stream holds %d",
			health.stored, healthBefore.stored, total, distinct, streamMsgs)
	}
	// Health counts every stored event as received once, a killed
	// collector's redelivered batch included.
	if health.received-healthBefore.received != health.stored-healthBefore.stored {
		t.Errorf("event_health counts %d received and %d stored in the live run", health.received-healthBefore.received, health.stored-healthBefore.stored)
	}
	if live.UniqueIPs == 0 || uint64(live.UniqueIPs) > streamMsgs {
		t.Errorf("%d live addresses, %d events in the stream", live.UniqueIPs, streamMsgs)
	}
	// …and they are every event the sensors' listeners accepted: none
	// dropped at a full queue or after failed publishes.
	var accepted uint64
	stopped := regexp.MustCompile(`msg=stopped received=(\d+) dropped=(\d+)`)
	for _, p := range sensorProcs {
		m := stopped.FindStringSubmatch(p.log.String())
		if m == nil {
			t.Fatalf("%s logged no msg=stopped line with its counts", p.name)
		}
		var n uint64
		fmt.Sscan(m[1], &n)
		accepted += n
		if m[2] != "0" {
			t.Errorf("%s dropped events at its full queue: %s", p.name, m[0])
		}
		if n := strings.Count(p.log.String(), "events not published, dropped"); n > 0 {
			t.Errorf("%s gave up publishing %d batch(es) of events", p.name, n)
		}
	}
	if accepted != streamMsgs || health.summarised != 0 {
		t.Errorf("the sensors accepted %d events, the stream holds %d (%d contacts summarised by the per-source budget)", accepted, streamMsgs, health.summarised)
	}
	t.Logf("sensors accepted %d events, stream %d, store %d live rows; health received %d stored %d dropped %d",
		accepted, streamMsgs, len(storeIDs), health.received, health.stored, health.dropped)

	// The figures: yesterday and the last seven days (the history) and
	// today (the live run), through `takedown stats` and both API nodes.
	for _, w := range []struct {
		what string
		p    *truthPeriod
	}{{"yesterday", &day}, {"the last seven days", truth.Last}, {"today", &live}} {
		from, to := w.p.From.Format(time.RFC3339), w.p.To.Format(time.RFC3339)
		for _, by := range []string{"country", "family"} {
			r := mustRun(t, nil, "--config", admin, "stats", "--json", "--by", by, "--from", from, "--to", to)
			var got statsDoc
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stats: %v\n%s", err, r.stdout)
			}
			mnCompare(t, "takedown stats: "+w.what, by, got, w.p)
			for _, a := range apis {
				q := url.Values{"from": {from}, "to": {to}, "by": {by}, "baseline": {"none"}}
				code, body := mnGet(t, a.web, "/api/v1/stats?"+q.Encode(), analyst)
				if code != 200 {
					t.Fatalf("%s /api/v1/stats: %d %s", a.web, code, body)
				}
				var got statsDoc
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				mnCompare(t, a.web+": "+w.what, by, got, w.p)
			}
		}
	}
	// The subscriber's network token reads exactly its country's
	// addresses of yesterday, on both nodes.
	for _, a := range apis {
		q := url.Values{"from": {yesterday.Format(time.RFC3339)}, "to": {today.Format(time.RFC3339)}, "limit": {"10000"}}
		code, body := mnGet(t, a.web, "/api/v1/events?"+q.Encode(), certIN)
		var doc struct {
			Rows []struct {
				IP        string   `json:"src_ip"`
				Country   string   `json:"src_geo"`
				Protocols []string `json:"protocols"`
			} `json:"rows"`
			Next string `json:"next_cursor"`
		}
		if code != 200 || json.Unmarshal(body, &doc) != nil || doc.Next != "" {
			t.Fatalf("%s events as cert-in: %d %.300s", a.web, code, body)
		}
		infected := map[string]bool{}
		for _, r := range doc.Rows {
			if r.Country != "IN" {
				t.Fatalf("%s: cert-in's token reads %s (%q)", a.web, r.IP, r.Country)
			}
			if slices.ContainsFunc(r.Protocols, func(p string) bool { return p != "dns" }) {
				infected[r.IP] = true
			}
		}
		if want := day.Countries["IN"].UniqueIPs; len(infected) != want {
			t.Errorf("%s: cert-in's token reads %d infected addresses of yesterday; truth %d", a.web, len(infected), want)
		}
	}

	// The evidence, against every event the store holds.
	stored := mnStoredIDs(t, db, `SELECT id FROM events`)
	from, to := today.AddDate(0, 0, -30).Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly)
	var pkgs int
	export := func(a mnNode, args ...string) (string, bool) {
		pkgs++
		pkg := filepath.Join(dir, fmt.Sprintf("evidence-%d", pkgs))
		r := run(t, nil, append([]string{"--config", a.conf, "evidence", "export", "--from", from, "--to", to, "-o", pkg}, args...)...)
		if r.code != 0 {
			t.Logf("evidence export %v on %s: exit %d %s%s", args, a.web, r.code, r.stdout, r.stderr)
		}
		return pkg, r.code == 0
	}
	verify := func(a mnNode, pkg string) {
		key := evidenceKey(t, "--config", a.conf)
		if v := run(t, nil, "evidence", "verify", pkg, "--key", key); v.code != 0 || !strings.Contains(v.stdout, "VERIFIED") {
			t.Fatalf("%s's evidence package %s does not verify:\n%s%s", a.web, pkg, v.stdout, v.stderr)
		}
	}
	// The deployment's one evidence log, which the killed writer began
	// and the other node went on with: a package exported on either API
	// node (each reads its replica) holds every stored event once and
	// verifies against the one key; the log now extends the checkpoint
	// the killed writer signed.
	var logged map[string]string // the log's events: ID → case
	for i, a := range apis {
		mnWait(t, a.web+"'s evidence replica holding every stored event", 60*time.Second, func() bool {
			pkg, ok := export(a)
			if !ok {
				return false
			}
			ids := mnPackageEvents(t, pkg)
			for id := range ids {
				if stored[id] == 0 {
					t.Fatalf("%s's evidence log holds event %s, which is not stored", a.web, id)
				}
			}
			if len(ids) < len(stored) {
				return false // the writer is still catching up with the store
			}
			verify(a, pkg)
			if i == 0 {
				logged = ids
			}
			return true
		})
	}
	key := evidenceKey(t, "--config", apis[0].conf)
	if k := evidenceKey(t, "--config", apis[1].conf); k != key {
		t.Fatalf("the API nodes' evidence keys differ: %s and %s", key, k)
	}
	pub, err := evidence.ParsePublicKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	old, err := evidence.OpenCheckpoint([]byte(deadCP), pub)
	if err != nil {
		t.Fatalf("the killed writer's checkpoint: %v\n%s", err, deadCP)
	}
	now, err := evidence.OpenCheckpoint([]byte(mustRun(t, nil, "--config", apis[other].conf, "evidence", "checkpoint").stdout), pub)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := evidence.Open(t.Context(), filepath.Join(apis[other].data, "evidence"), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := replica.ProveConsistency(old.Size, now.Size)
	replica.Close()
	if err == nil {
		err = proof.Verify(old.Root, now.Root)
	}
	if err != nil || now.Size <= old.Size {
		t.Fatalf("the checkpoint at %d after the takeover does not extend the killed writer's at %d: %v", now.Size, old.Size, err)
	}
	t.Logf("evidence: the killed writer's checkpoint at %d is extended by the new writer's at %d", old.Size, now.Size)
	writer := &apis[other]
	pkg, ok := export(*writer, "--case", "mn-1")
	if !ok {
		t.Fatal("no evidence package of the case")
	}
	inCase := mnPackageEvents(t, pkg)
	want := 0
	for id, c := range logged {
		if c == "mn-1" {
			want++
			if _, ok := inCase[id]; !ok {
				t.Errorf("the case's evidence package lacks stored event %s", id)
			}
		}
	}
	for id, c := range inCase {
		if c != "mn-1" || logged[id] != "mn-1" {
			t.Errorf("the case's evidence package holds event %s of case %q", id, c)
		}
	}
	if len(inCase) != want || want == 0 {
		t.Errorf("the case's evidence package holds %d events; %d stored events are of the case", len(inCase), want)
	}
	verify(*writer, pkg)
	t.Logf("evidence: both replicas hold the %d stored events once each; the package of the case from %s, %d events, verifies offline", len(stored), writer.web, len(inCase))

	// One report per subscriber and day: the schedulers of both API nodes
	// sent yesterday's at their start; `notify send` on both nodes at
	// once then sends nothing more.
	type delivery struct {
		Subscriber string    `json:"subscriber"`
		Day        time.Time `json:"day"`
		State      string    `json:"state"`
		Rows       int       `json:"rows"`
		MessageID  string    `json:"message_id"`
	}
	var ledger []delivery
	mnWait(t, "both schedulers' reports of yesterday", 60*time.Second, func() bool {
		var st struct {
			Deliveries []delivery `json:"deliveries"`
		}
		r := mustRun(t, nil, "--config", admin, "notify", "status", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("notify status: %v\n%s", err, r.stdout)
		}
		ledger = st.Deliveries
		sent := 0
		for _, d := range ledger {
			if d.State == "sent" {
				sent++
			}
		}
		return sent == len(subscribers)
	})
	if !strings.Contains(apiProcs[0].log.String()+apiProcs[1].log.String(), "daily reports done") {
		t.Errorf("no API node's scheduler logged its reports")
	}
	var wg sync.WaitGroup
	sends := make([]result, len(apis))
	for i, a := range apis {
		wg.Go(func() {
			sends[i] = run(t, nil, "--config", a.conf, "notify", "send", "--smtp", smtp.addr, "--from", "abuse-reports@takedown.example",
				"--date", yesterday.Format(time.DateOnly), "--json")
		})
	}
	wg.Wait()
	for i, r := range sends {
		if r.code != 0 {
			t.Errorf("notify send on %s: exit %d\n%s%s", apis[i].web, r.code, r.stdout, r.stderr)
		}
	}
	mails := smtp.settle(t, len(subscribers))
	time.Sleep(500 * time.Millisecond) // a late duplicate would land now
	mails = smtp.settle(t, len(subscribers))
	byID := map[string][]string{}
	perRecipient := map[string]int{}
	for _, m := range mails {
		id, csvs := reportCSVs(t, m)
		if _, dup := byID[id]; dup {
			t.Errorf("message %s delivered twice", id)
		}
		byID[id] = csvs
		for _, to := range mnRecipients(t, m) {
			perRecipient[to]++
		}
	}
	if len(mails) != len(subscribers) || len(ledger) != len(subscribers) {
		t.Errorf("%d mails in the mailbox, %d reports in the ledger, for %d subscribers: %v", len(mails), len(ledger), len(subscribers), perRecipient)
	}
	for _, d := range ledger {
		cc := subscribers[d.Subscriber]
		report, ok := byID[d.MessageID]
		if !d.Day.Equal(yesterday) || d.State != "sent" || !ok || perRecipient[d.Subscriber+"@reports.example"] != 1 {
			t.Errorf("%s: report of %s %s, mail found %v, %d mails to it", d.Subscriber, d.Day.Format(time.DateOnly), d.State, ok, perRecipient[d.Subscriber+"@reports.example"])
			continue
		}
		addrs := map[string]bool{}
		for _, c := range report {
			recs, err := csv.NewReader(strings.NewReader(c)).ReadAll()
			if err != nil || len(recs) < 1 {
				t.Fatalf("%s: CSV: %v", d.Subscriber, err)
			}
			col := slices.Index(recs[0], "src_ip")
			for _, rec := range recs[1:] {
				addrs[rec[col]] = true
			}
		}
		if want := day.Countries[cc].UniqueIPs; len(addrs) != want {
			t.Errorf("%s: report lists %d addresses; truth %d for %s yesterday", d.Subscriber, len(addrs), want, cc)
		}
	}
	t.Logf("yesterday %d addresses, last 7 days %d, today %d (live); %d reports; wall time %s",
		day.UniqueIPs, truth.Last.UniqueIPs, live.UniqueIPs, len(mails), time.Since(started).Round(time.Second))
}

// mnCompare checks a stats document grouped by country or by family
// against a truth period.
func mnCompare(t *testing.T, what, by string, got statsDoc, want *truthPeriod) {
	t.Helper()
	if by == "country" {
		compareCountries(t, what+" by country", got, want)
		return
	}
	compareFamilyRows(t, what+" by family", got, want)
}

// mnConfig fills the placeholders (${NAME}) of a deploy/examples file and
// checks the result with `takedown config check`. Every placeholder must
// be given; ${…} in the file's comments is left as it is.
func mnConfig(t *testing.T, example, out string, vars map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "examples", example))
	if err != nil {
		t.Fatal(err)
	}
	ident := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	var missing []string
	used := map[string]bool{}
	s := os.Expand(string(b), func(k string) string {
		if !ident.MatchString(k) {
			return "${" + k + "}"
		}
		v, ok := vars[k]
		if !ok {
			missing = append(missing, k)
		}
		used[k] = true
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("%s: placeholders the test does not fill: %v", example, missing)
	}
	for k := range vars {
		if !used[k] {
			t.Fatalf("%s has no placeholder ${%s}", example, k)
		}
	}
	if err := os.WriteFile(out, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "config", "check", out)
}

func mnToken(t *testing.T, conf string, args ...string) string {
	t.Helper()
	var created struct{ Secret string }
	r := mustRun(t, nil, append([]string{"--config", conf, "token", "create", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || created.Secret == "" {
		t.Fatalf("token create: %v\n%s", err, r.stdout)
	}
	return created.Secret
}

func mnGet(t *testing.T, addr, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type mnHealthRow struct{ received, stored, dropped, summarised uint64 }

func mnHealth(t *testing.T, db *pgx.Conn) mnHealthRow {
	t.Helper()
	var h mnHealthRow
	if err := db.QueryRow(t.Context(), `SELECT received, stored, dropped, summarised FROM event_health WHERE id = 1`).Scan(&h.received, &h.stored, &h.dropped, &h.summarised); err != nil {
		t.Fatal(err)
	}
	return h
}

func mnCount(t *testing.T, db *pgx.Conn, q string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mnWait polls cond every 50 ms until it holds; past within, the test
// fails naming what it waited for.
func mnWait(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mnAwayFromMidnight waits, if UTC midnight is less than three minutes
// away, until it has passed: the run's "today" and "yesterday" must not
// move under it.
func mnAwayFromMidnight(t *testing.T) {
	next := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if d := time.Until(next); d < 3*time.Minute {
		t.Logf("waiting %s for UTC midnight to pass", d.Round(time.Second))
		time.Sleep(d + 2*time.Second)
	}
}

func mnTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// mnRecipients are the addresses of a mail's To header.
func mnRecipients(t *testing.T, raw []byte) []string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	list, err := m.Header.AddressList("To")
	if err != nil {
		t.Fatalf("To: %v", err)
	}
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// mnNode is one node's configuration file and data dir, and the
// addresses it listens on: a sensor's DNS and HTTP sinkholes, an API
// node's dashboard.
type mnNode struct {
	conf, data string
	dns, http  string
	web        string
}

// mnProc is a long-running process of the deployment.
type mnProc struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error
}

func mnStart(t *testing.T, name, bin string, args ...string) *mnProc {
	t.Helper()
	p := &mnProc{name: name, cmd: exec.Command(bin, args...), log: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "TAKEDOWN_ACTOR=e2e")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *mnProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mustRun fails the test if the process has exited.
func (p *mnProc) mustRun(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited: %v\n%s", p.name, p.err, mnTail(p.log.String(), 6000))
	}
}

func (p *mnProc) waitLog(t *testing.T, line string, within time.Duration) {
	t.Helper()
	mnWait(t, p.name+" to log "+line, within, func() bool {
		p.mustRun(t)
		return strings.Contains(p.log.String(), line)
	})
}

func (p *mnProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM; it must exit cleanly within the
// bound.
func (p *mnProc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s: %v\n%s", p.name, p.err, mnTail(p.log.String(), 6000))
		}
	case <-time.After(within):
		t.Fatalf("%s did not stop within %s", p.name, within)
	}
}

// mnNATS is one node of the JetStream cluster.
type mnNATS struct {
	name, url string
	proc      *mnProc
}

// mnStartNATSCluster starts three clustered JetStream servers on loopback
// and waits until each accepts clients.
func mnStartNATSCluster(t *testing.T, bin, dir string) []*mnNATS {
	t.Helper()
	var ports, cports []int
	var routes []string
	for range 3 {
		ports = append(ports, testtool.FreePort(t, "tcp"))
		cp := testtool.FreePort(t, "tcp")
		cports = append(cports, cp)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", cp))
	}
	var nodes []*mnNATS
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		conf := filepath.Join(dir, "nats-"+name+".conf")
		os.WriteFile(conf, []byte(fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\ncluster { name: takedown, listen: 127.0.0.1:%d, routes: [%s] }\n",
			name, ports[i], filepath.Join(dir, "js-"+name), cports[i], strings.Join(routes, ", "))), 0o600)
		nodes = append(nodes, &mnNATS{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), proc: mnStart(t, "nats-"+name, bin, "-c", conf)})
	}
	for _, n := range nodes {
		mnWait(t, "nats-server "+n.name, 30*time.Second, func() bool {
			n.proc.mustRun(t)
			c, err := nats.Connect(n.url, nats.Timeout(time.Second))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return nodes
}

// mnStreamPeers returns the server names of the event stream's leader
// and of its other replicas.
func mnStreamPeers(t *testing.T, js jetstream.JetStream) (leader string, followers []string) {
	t.Helper()
	mnWait(t, "the stream's leader and replicas", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, natsbus.DefaultStream)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		leader, followers = info.Cluster.Leader, nil
		for _, r := range info.Cluster.Replicas {
			followers = append(followers, r.Name)
		}
		return true
	})
	return leader, followers
}

// mnStreamIDs reads every message of the event stream, one by one from
// its leader (an ordered consumer would need a placement among the
// cluster's nodes, one of which is dead), and returns their event IDs
// (JetStream's message IDs, which the sensors set to them).
func mnStreamIDs(t *testing.T, js jetstream.JetStream) (ids map[string]bool, msgs uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, natsbus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	ids = map[string]bool{}
	for seq := st.FirstSeq; seq <= st.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		msgs++
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" {
			t.Fatalf("stream message %d on %s without an ID", seq, m.Subject)
		}
		ids[id] = true
	}
	if msgs != st.Msgs {
		t.Fatalf("read %d messages of the stream's %d", msgs, st.Msgs)
	}
	return ids, msgs
}

// mnEvidenceWriter waits until an API node holds the lease "evidence"
// and returns its index in procs (the lease names the holder's pid).
func mnEvidenceWriter(t *testing.T, db *pgx.Conn, procs []*mnProc, within time.Duration) int {
	t.Helper()
	w := -1
	mnWait(t, "an evidence writer", within, func() bool {
		var holder string
		var until int64
		if err := db.QueryRow(t.Context(), `SELECT holder, until FROM leases WHERE name = 'evidence'`).Scan(&holder, &until); err != nil || time.Unix(0, until).Before(time.Now()) {
			return false
		}
		for i, p := range procs {
			if parts := strings.Split(holder, "/"); len(parts) == 3 && parts[1] == strconv.Itoa(p.cmd.Process.Pid) && !p.exited() {
				w = i
				return true
			}
		}
		return false
	})
	return w
}

// mnStoredIDs counts the event IDs that query (selecting events.id)
// returns.
func mnStoredIDs(t *testing.T, db *pgx.Conn, query string, args ...any) map[string]int {
	t.Helper()
	rows, err := db.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[string]int{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		id, err := event.UnpackID(b)
		if err != nil {
			t.Fatal(err)
		}
		ids[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// mnPackageEvents returns the events of an evidence package's
// events.jsonl, ID → case; an event held twice fails the test.
func mnPackageEvents(t *testing.T, pkg string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pkg, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for l := range strings.Lines(string(b)) {
		var e struct {
			ID   string `json:"id"`
			Case string `json:"case"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID == "" {
			t.Fatalf("%s: %v: %.200s", pkg, err, l)
		}
		if _, dup := ids[e.ID]; dup {
			t.Fatalf("%s holds event %s twice", pkg, e.ID)
		}
		ids[e.ID] = e.Case
	}
	return ids
}

// mnSim is one live run of `takedown simulate`.
type mnSim struct {
	name string
	out  bytes.Buffer
	log  *lockedBuffer
	done chan error
}

type mnLiveReport struct {
	HTTP       int64          `json:"http"`
	DNS        int64          `json:"dns"`
	Failed     int64          `json:"failed"`
	FirstError string         `json:"first_error"`
	UniqueIPs  map[string]int `json:"unique_ips"`
}

func (r *mnLiveReport) total() int {
	n := 0
	for v := range maps.Values(r.UniqueIPs) {
		n += v
	}
	return n
}

// mnSimulate beacons to one sensor: a small population in the given
// countries, N beacons at 100 a second over HTTP and DNS.
func mnSimulate(t *testing.T, data string, to mnNode, countries, seed string, beacons int, names string) *mnSim {
	t.Helper()
	s := &mnSim{name: "simulate → " + to.http, log: &lockedBuffer{}, done: make(chan error, 1)}
	cmd := exec.Command(binary, "--data", data, "simulate", "--domains", names, "--countries", countries, "--seed", seed,
		"--bots", "150", "--days", "3", "--http", to.http, "--dns", to.dns, "--beacons", fmt.Sprint(beacons),
		"--rate", "100", "--concurrency", "16", "--duration", "80s", "--json")
	cmd.Stdout, cmd.Stderr = &s.out, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	})
	return s
}

func (s *mnSim) wait(t *testing.T, within time.Duration) mnLiveReport {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("%s: %v\n%s", s.name, err, s.log.String())
		}
	case <-time.After(within):
		t.Fatalf("%s did not end within %s", s.name, within)
	}
	var r mnLiveReport
	if err := json.Unmarshal(s.out.Bytes(), &r); err != nil {
		t.Fatalf("%s report: %v\n%s", s.name, err, s.out.String())
	}
	return r
}

// mnSMTP is a real OpenSMTPD on a loopback port delivering every message
// into one maildir (testtool.StartOpenSMTPD).
type mnSMTP struct {
	addr, maildir string
}

// mnStartOpenSMTPD starts smtpd (testtool.StartOpenSMTPD).
func mnStartOpenSMTPD(t *testing.T) *mnSMTP {
	t.Helper()
	srv := testtool.StartOpenSMTPD(t)
	return &mnSMTP{addr: srv.Addr, maildir: srv.Maildir}
}

// settle waits until smtpd's queue is empty and at least want messages
// are in the maildir, and returns them all.
func (s *mnSMTP) settle(t *testing.T, want int) [][]byte {
	t.Helper()
	var msgs [][]byte
	mnWait(t, fmt.Sprintf("%d mails delivered", want), 30*time.Second, func() bool {
		out, _ := exec.Command("smtpctl", "show", "queue").Output()
		files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
		msgs = msgs[:0]
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, b)
		}
		return len(bytes.TrimSpace(out)) == 0 && len(msgs) >= want
	})
	return msgs
}
