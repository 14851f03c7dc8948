// Command mkasn converts the ip-location-db ASN range files (gzip CSV, no
// header: first_ip,last_ip,asn,organisation) into one MaxMind DB with the
// standard GeoLite2-ASN layout (autonomous_system_number,
// autonomous_system_organization), which internal/geo reads. It is a build
// tool for the bundled data in data/geo, not part of the binary.
//
// Usage:
//
//	go run ./internal/geo/cmd/mkasn -o data/geo/asn.mmdb \
//	    ../shared/data/geo/asn-ipv4.csv.gz ../shared/data/geo/asn-ipv6.csv.gz
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func main() {
	out := flag.String("o", "asn.mmdb", "output MMDB file")
	epoch := flag.Int64("epoch", 1781654400, "build epoch written into the metadata (fixed for reproducible output)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkasn [-o FILE] ASN-CSV.gz…")
		os.Exit(2)
	}
	if err := run(*out, *epoch, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkasn:", err)
		os.Exit(1)
	}
}

func run(out string, epoch int64, inputs []string) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "ipinfo-asn-takedown",
		Description:             map[string]string{"en": "ASN ranges from ip-location-db (RouteViews, DB-IP, NRO; CC BY 4.0)"},
		IPVersion:               6,
		RecordSize:              28,
		BuildEpoch:              epoch,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		return err
	}
	// One value per distinct (asn, org): the writer deduplicates data by
	// key, so sharing the value keeps the file small.
	values := map[string]mmdbtype.Map{}
	n := 0
	for _, in := range inputs {
		c, err := load(tree, in, values)
		if err != nil {
			return err
		}
		n += c
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if _, err := tree.WriteTo(w); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mkasn: %d ranges, %d distinct ASes -> %s\n", n, len(values), out)
	return nil
}

func load(tree *mmdbwriter.Tree, name string, values map[string]mmdbtype.Map) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		defer z.Close()
		r = z
	}
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	n := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		first, last := net.ParseIP(rec[0]), net.ParseIP(rec[1])
		if first == nil || last == nil {
			return n, fmt.Errorf("%s:%d: bad address range %q-%q", name, line, rec[0], rec[1])
		}
		asn, err := strconv.ParseUint(rec[2], 10, 32)
		if err != nil {
			return n, fmt.Errorf("%s:%d: bad ASN %q", name, line, rec[2])
		}
		if asn == 0 {
			continue // "not routed": leave the range empty
		}
		key := rec[2] + "\x00" + rec[3]
		v, ok := values[key]
		if !ok {
			v = mmdbtype.Map{
				"autonomous_system_number":       mmdbtype.Uint32(asn),
				"autonomous_system_organization": mmdbtype.String(rec[3]),
			}
			values[key] = v
		}
		if err := tree.InsertRange(first, last, v); err != nil {
			var alias *mmdbwriter.AliasedNetworkError
			if errors.As(err, &alias) {
				// Teredo and 6to4 (2001::/32, 2002::/16) are aliases of
				// the IPv4 tree: their addresses are looked up as IPv4.
				continue
			}
			return n, fmt.Errorf("%s:%d: insert %s-%s: %w", name, line, rec[0], rec[1], err)
		}
		n++
	}
}
