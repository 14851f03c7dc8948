package notify_test

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/notify"
)

// TestHeadersFolded: a report to many contacts, for an organisation with a
// long name, keeps every header line within RFC 5322's 78 characters (and
// so within the 998 limit), and unfolds to the same values: every contact
// is still an addressee, the subject reads as before.
func TestHeadersFolded(t *testing.T) {
	var contacts []string
	for i := range 60 {
		contacts = append(contacts, fmt.Sprintf("abuse-desk-%02d@network-operations.isp.example", i))
	}
	longOrg := strings.Repeat("VeryLongOrganisationNameWithoutSpaces", 30)
	tests := []struct {
		name, org   string
		contacts    []string
		formats     []notify.Format
		wantSubject string
	}{
		{"many contacts", "Org many", contacts, nil, "Infected addresses in your networks on 2011-09-13: 3 (Org many)"},
		{"long organisation name", longOrg, contacts[:1], nil, "(" + longOrg + ")"},
		{"non-ASCII organisation name", "Société Générale des Réseaux Informatiques de l'Ouest et du Nord", contacts[:3], nil, "(Société Générale"},
		{"X-ARF 0.2 digest", "Org xarf", contacts, []notify.Format{notify.FormatXARF02}, "Infected addresses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := subscriber(t, "fold", "AS64500", tc.contacts...)
			s.Org, s.Formats = tc.org, tc.formats
			msg, _, err := notify.Compose(&s, day, synthRows(3), notify.MessageOptions{From: "takedown@dcu.example"}, day)
			if err != nil {
				t.Fatal(err)
			}
			// Every header line of the mail and of the messages inside the
			// digest (any line before a blank line, for simplicity: body
			// lines are at most 76 by QP and base64 anyway).
			sc := bufio.NewScanner(bytes.NewReader(msg))
			sc.Buffer(nil, 1<<20)
			for n := 1; sc.Scan(); n++ {
				if l := sc.Text(); len(l) > 78 {
					t.Errorf("line %d has %d characters: %.100q", n, len(l), l)
				}
			}
			m, err := mail.ReadMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			to, err := m.Header.AddressList("To")
			if err != nil || len(to) != len(tc.contacts) {
				t.Fatalf("To unfolds to %d addresses (%v); want %d", len(to), err, len(tc.contacts))
			}
			for i, a := range to {
				if a.Address != tc.contacts[i] {
					t.Errorf("addressee %d is %q; want %q", i, a.Address, tc.contacts[i])
				}
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if err != nil || !strings.Contains(subject, tc.wantSubject) {
				t.Errorf("subject %q (%v); want it to hold %q", subject, err, tc.wantSubject)
			}
		})
	}
}

// TestComposeRefusesOverlongContact: an address longer than RFC 5321
// allows is refused, not written into a header line it would overflow.
func TestComposeRefusesOverlongContact(t *testing.T) {
	s := subscriber(t, "long", "AS64500", "abuse@isp.example")
	s.Contacts = append(s.Contacts, strings.Repeat("a", 250)+"@isp.example")
	if _, _, err := notify.Compose(&s, day, synthRows(1), notify.MessageOptions{From: "takedown@dcu.example"}, day); err == nil ||
		!strings.Contains(err.Error(), "longer than 254") {
		t.Fatalf("Compose = %v; want a refusal of the long contact", err)
	}
}
