package dnssink

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// DNS constants used on the hot path.
const (
	headerLen = 12
	maxName   = 255 // wire length of a name, root label included

	flagQR = 0x8000
	flagAA = 0x0400
	flagTC = 0x0200
	flagRD = 0x0100
	flagCD = 0x0010

	typeA     = 1
	typeNS    = 2
	typeSOA   = 6
	typeHINFO = 13
	typeAAAA  = 28
	typeOPT   = 41
	typeIXFR  = 251
	typeAXFR  = 252
	typeANY   = 255
	classIN   = 1

	rcodeNoError  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3 // never sent: a name not seized is REFUSED
	rcodeNotImp   = 4
	rcodeRefused  = 5
	rcodeBadVers  = 16 // extended: needs an OPT record

	minUDPSize = 512
)

// parseStatus is what the question parser decided.
type parseStatus uint8

const (
	parsed  parseStatus = iota // q is filled in
	drop                       // not worth an answer (too short, a response)
	formErr                    // answer FORMERR with the header only
	notImp                     // answer NOTIMP with the header only
	general                    // unusual: use the general parser
)

// query is the question of one message and what of its EDNS record the
// answer depends on. The parsers fill it in place, without allocating.
type query struct {
	id    uint16
	flags uint16
	// wire is the question name as received (case preserved, uncompressed).
	wire []byte
	// lower is the name in presentation form, lower-cased, without the
	// final dot; text the same with the case as received. Both escape
	// dots inside labels and bytes that are not printable.
	lower, text []byte
	// labelOff[i] is where label i starts in lower (suffix keys for the
	// zone lookup); wireOff[i] where it starts in wire (compression
	// pointers to the apex).
	labelOff      [128]uint16
	wireOff       [128]uint8
	nlabels       int
	qtype, qclass uint16

	edns        bool
	ednsVersion uint8
	udpSize     uint16
	do          bool
	ecs         netip.Prefix

	// buffers behind wire, lower and text, reused across queries.
	wireBuf  [maxName]byte
	lowerBuf [4 * maxName]byte
	textBuf  [4 * maxName]byte
}

func (q *query) reset() {
	q.wire, q.lower, q.text = nil, q.lowerBuf[:0], q.textBuf[:0]
	q.nlabels = 0
	q.edns, q.ednsVersion, q.udpSize, q.do = false, 0, 0, false
	q.ecs = netip.Prefix{}
}

// appendLabel writes label l in presentation form to lower and text.
func (q *query) appendLabel(l []byte) {
	if q.nlabels > 0 {
		q.lower = append(q.lower, '.')
		q.text = append(q.text, '.')
	}
	q.labelOff[q.nlabels] = uint16(len(q.lower))
	q.nlabels++
	for _, c := range l {
		switch {
		case c >= 'A' && c <= 'Z':
			q.lower = append(q.lower, c+('a'-'A'))
			q.text = append(q.text, c)
		case c == '.' || c == '\\' || c == ' ' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$':
			q.lower = append(q.lower, '\\', c)
			q.text = append(q.text, '\\', c)
		case c < 0x21 || c > 0x7e:
			d := [4]byte{'\\', '0' + c/100, '0' + c/10%10, '0' + c%10}
			q.lower = append(q.lower, d[:]...)
			q.text = append(q.text, d[:]...)
		default:
			q.lower = append(q.lower, c)
			q.text = append(q.text, c)
		}
	}
}

// parseFast parses the header and question of msg in place. It handles what
// real resolvers send (one question, an uncompressed name, at most an OPT
// record without options) and returns general for anything else.
func parseFast(q *query, msg []byte) parseStatus {
	q.reset()
	if len(msg) < headerLen {
		return drop
	}
	q.id = binary.BigEndian.Uint16(msg[0:])
	q.flags = binary.BigEndian.Uint16(msg[2:])
	if q.flags&flagQR != 0 {
		return drop // never answer a response: no loops between servers
	}
	if (q.flags>>11)&0xF != dns.OpcodeQuery {
		return notImp
	}
	qd := binary.BigEndian.Uint16(msg[4:])
	an := binary.BigEndian.Uint16(msg[6:])
	ns := binary.BigEndian.Uint16(msg[8:])
	ar := binary.BigEndian.Uint16(msg[10:])
	if qd != 1 {
		return formErr
	}
	if an != 0 || ns != 0 || ar > 1 {
		return general
	}
	i := headerLen
	for {
		if i >= len(msg) {
			return formErr
		}
		l := int(msg[i])
		if l == 0 {
			i++
			break
		}
		if l&0xC0 != 0 {
			return general // compression pointer or extended label type
		}
		if i+1+l > len(msg) {
			return formErr
		}
		if i+1+l-headerLen >= maxName {
			return formErr
		}
		q.wireOff[q.nlabels] = uint8(i - headerLen)
		q.appendLabel(msg[i+1 : i+1+l])
		i += 1 + l
	}
	q.wire = msg[headerLen:i]
	if i+4 > len(msg) {
		return formErr
	}
	q.qtype = binary.BigEndian.Uint16(msg[i:])
	q.qclass = binary.BigEndian.Uint16(msg[i+2:])
	i += 4
	if ar == 0 {
		return parsed
	}
	// One additional record: an OPT without options is handled here.
	if len(msg) < i+11 || msg[i] != 0 || binary.BigEndian.Uint16(msg[i+1:]) != typeOPT {
		return general
	}
	rdlen := int(binary.BigEndian.Uint16(msg[i+9:]))
	if rdlen != 0 || len(msg) != i+11 {
		return general // options (ECS, cookies, padding) or trailing data
	}
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(msg[i+1+2:])
	q.ednsVersion = msg[i+6]
	q.do = msg[i+7]&0x80 != 0
	return parsed
}

// parseGeneral parses msg with miekg/dns, for what parseFast leaves out:
// compressed question names, EDNS options (Client Subnet), several
// additional records. It returns formErr for a message that does not parse
// (bad label lengths, compression loops) or breaks a rule (several OPTs).
func parseGeneral(q *query, msg []byte) parseStatus {
	q.reset()
	var m dns.Msg
	if err := m.Unpack(msg); err != nil {
		return formErr
	}
	if len(m.Question) != 1 || len(m.Answer) != int(binary.BigEndian.Uint16(msg[6:])) ||
		len(m.Ns) != int(binary.BigEndian.Uint16(msg[8:])) || len(m.Extra) != int(binary.BigEndian.Uint16(msg[10:])) {
		return formErr // miekg/dns forgives sections shorter than their counts
	}
	q.id = m.Id
	q.flags = binary.BigEndian.Uint16(msg[2:])
	n, err := dns.PackDomainName(m.Question[0].Name, q.wireBuf[:], 0, nil, false)
	if err != nil {
		return formErr
	}
	q.wire = q.wireBuf[:n]
	for i := 0; q.wire[i] != 0; i += 1 + int(q.wire[i]) {
		q.wireOff[q.nlabels] = uint8(i)
		q.appendLabel(q.wire[i+1 : i+1+int(q.wire[i])])
	}
	q.qtype, q.qclass = m.Question[0].Qtype, m.Question[0].Qclass
	opts := 0
	for _, rr := range m.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue // TSIG and others: ignored, never answered with
		}
		if opts++; opts > 1 {
			return formErr // RFC 6891 §6.1.1: more than one OPT
		}
		q.edns = true
		q.udpSize = opt.UDPSize()
		q.ednsVersion = opt.Version()
		q.do = opt.Do()
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				if a, ok := netip.AddrFromSlice(s.Address); ok {
					if s.Family == 1 {
						a = a.Unmap()
					}
					if p, err := a.Prefix(int(s.SourceNetmask)); err == nil {
						q.ecs = p
					}
				}
			}
		}
	}
	return parsed
}

// headerOnly writes a reply of just a header: FORMERR or NOTIMP to a message
// whose question is not used.
func headerOnly(out []byte, msg []byte, rcode int) []byte {
	out = out[:headerLen]
	clear(out)
	copy(out[0:2], msg[0:2])
	fl := binary.BigEndian.Uint16(msg[2:])
	fl = flagQR | fl&(0xF<<11) | fl&flagRD | uint16(rcode&0xF)
	binary.BigEndian.PutUint16(out[2:], fl)
	return out
}
