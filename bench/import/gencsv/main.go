// Command gencsv writes a Shadowserver event4_sinkhole_http report for the
// import benchmark: -rows rows over -days UTC days from 2011-03-17, from
// -ips distinct IPv4 addresses a day (in a scattered order, as a sinkhole
// sees them), with the source's ASN and country filled in as Shadowserver
// does. Deterministic. For benchmarks only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"
)

const header = "timestamp,protocol,src_ip,src_port,src_asn,src_geo,src_region,src_city,src_hostname,src_naics,src_sector,device_vendor,device_type,device_model,severity,dst_ip,dst_port,dst_asn,dst_geo,dst_region,dst_city,dst_hostname,dst_naics,dst_sector,public_source,infection,family,tag,application,version,event_id,ssl_cipher,ssl_servername,http_url,http_host,http_agent,forwarded_by,http_referer,machine_name"

var countries = []string{"US", "IN", "BR", "DE", "RU", "TR", "VN", "ID", "CN", "FR", "IT", "GB", "UA", "PL", "KR", "MX", "ES", "TH", "AR", "IR"}

func main() {
	rows := flag.Int("rows", 1_600_000, "rows")
	ips := flag.Int("ips", 1_600_000, "distinct addresses a day")
	days := flag.Int("days", 1, "days")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	fmt.Fprintln(w, header)
	start := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	perDay := (*rows + *days - 1) / *days
	for i := range *rows {
		day, k := i/perDay, i%perDay
		n := uint32(k % *ips)
		// A bijection of 0..2^24-1 scatters the addresses; they stay in
		// 11.0.0.0–26.255.255.255 (public, unicast).
		s := (n*2654435761 + uint32(day)*40503) & 0xffffff
		ip := 0x0b000000 + s*16 + uint32(k / *ips % 16)
		ts := start.AddDate(0, 0, day).Add(time.Duration(int64(k) * 86400 * 1e9 / int64(perDay)))
		c := int(s % uint32(len(countries)))
		fmt.Fprintf(w, "%s,tcp,%d.%d.%d.%d,%d,%d,%s,,,,,,,,,,192.0.2.80,80,64496,US,,,,,,MSDCU,rustock,rustock,spam,http,,,,,/images/logo.gif?id=%d,c2-%d.rustock.example,Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1),,,\n",
			ts.Format(time.DateTime), ip>>24, ip>>16&255, ip>>8&255, ip&255, 1024+k%60000, 3000+int(s%4000), countries[c], s%100000, s%50)
	}
}
