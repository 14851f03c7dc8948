package connsink

import (
	"container/list"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/tlsfp"
)

// caDir is the directory under the data dir that holds the sinkhole CA.
const caDir = "connsink-ca"

// certMinter issues leaf certificates for whatever name a client asks for,
// signed by the sinkhole CA, and keeps the last few in an LRU cache.
type certMinter struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	caPEM   []byte
	leafKey *ecdsa.PrivateKey // one key for every leaf: minting is one signature
	now     func() time.Time
	size    int

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	index map[string]*list.Element
}

type cacheEntry struct {
	name string
	cert *tls.Certificate
}

var caMu sync.Mutex // serialises CA creation inside one process

// newCertMinter loads the sinkhole CA from dataDir/connsink-ca, creating it
// (ECDSA P-256, key mode 0600) on first use.
func newCertMinter(dataDir string, size int, now func() time.Time) (*certMinter, error) {
	if size <= 0 {
		size = 1024
	}
	ca, key, caPEM, err := loadOrCreateCA(filepath.Join(dataDir, caDir), now)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("connsink: leaf key: %w", err)
	}
	return &certMinter{ca: ca, caKey: key, caPEM: caPEM, leafKey: leafKey, now: now, size: size,
		lru: list.New(), index: map[string]*list.Element{}}, nil
}

func loadOrCreateCA(dir string, now func() time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	caMu.Lock()
	defer caMu.Unlock()
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, errC := os.ReadFile(certPath)
	keyPEM, errK := os.ReadFile(keyPath)
	if errC == nil && errK == nil {
		return parseCA(certPEM, keyPEM, certPath)
	}
	if !errors.Is(errC, os.ErrNotExist) || !errors.Is(errK, os.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("connsink: sinkhole CA in %s is incomplete (%v; %v)", dir, errC, errK)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: create CA dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: CA key: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "takedown sinkhole CA", Organization: []string{"takedown sinkhole"}},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: create CA: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	// The key first, exclusively: a concurrent creator in another process
	// fails here instead of overwriting.
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: write CA key: %w", err)
	}
	if _, err := kf.Write(keyPEM); err != nil {
		kf.Close()
		return nil, nil, nil, fmt.Errorf("connsink: write CA key: %w", err)
	}
	if err := kf.Close(); err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: write CA key: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: write CA cert: %w", err)
	}
	return parseCA(certPEM, keyPEM, certPath)
}

func parseCA(certPEM, keyPEM []byte, path string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, nil, fmt.Errorf("connsink: %s: not PEM", path)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: %s: %w", path, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connsink: CA key next to %s: %w", path, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, fmt.Errorf("connsink: CA key next to %s is not ECDSA", path)
	}
	return cert, key, certPEM, nil
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// certificate returns a leaf for name (an SNI host name, or an address in
// text form when the client sent none), from the cache or freshly minted.
func (m *certMinter) certificate(name string) (*tls.Certificate, error) {
	m.mu.Lock()
	if e, ok := m.index[name]; ok {
		m.lru.MoveToFront(e)
		c := e.Value.(*cacheEntry).cert
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	c, err := m.mint(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.index[name]; ok { // minted concurrently
		return e.Value.(*cacheEntry).cert, nil
	}
	m.index[name] = m.lru.PushFront(&cacheEntry{name: name, cert: c})
	for m.lru.Len() > m.size {
		old := m.lru.Remove(m.lru.Back()).(*cacheEntry)
		delete(m.index, old.name)
	}
	return c, nil
}

// cached is the number of leaves in the cache.
func (m *certMinter) cached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

func (m *certMinter) mint(name string) (*tls.Certificate, error) {
	t := m.now()
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    t.Add(-time.Hour),
		NotAfter:     t.AddDate(0, 0, 90),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if a, err := netip.ParseAddr(name); err == nil {
		tmpl.IPAddresses = []net.IP{a.AsSlice()}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, &m.leafKey.PublicKey, m.caKey)
	if err != nil {
		return nil, fmt.Errorf("connsink: mint certificate for %q: %w", name, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, m.ca.Raw}, PrivateKey: m.leafKey}, nil
}

// certName is the name a leaf is minted for: the SNI if it is a plausible
// host name, else the address the client connected to.
func certName(sni string, local netip.AddrPort) string {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if sni != "" && len(sni) <= 253 && plausibleHost(sni) {
		return sni
	}
	if a := local.Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
		return a.String()
	}
	return "sinkhole.invalid"
}

func plausibleHost(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '*') {
			return false
		}
	}
	return true
}

// recConn records the first bytes a TLS server reads, so that the raw
// ClientHello can be fingerprinted even when the handshake then fails.
type recConn struct {
	net.Conn
	r    io.Reader // where reads come from (a buffered PROXY reader, or Conn)
	buf  []byte
	stop bool
	meta *tlsMeta
	ch   *tlsfp.ClientHello
}

const maxRecord = 5 + tlsfp.MaxHelloBytes + 1024

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if !c.stop && n > 0 {
		room := maxRecord - len(c.buf)
		c.buf = append(c.buf, p[:min(n, room)]...)
		if room <= n {
			c.stop = true
		}
	}
	return n, err
}

// fingerprint parses the recorded ClientHello once.
func (c *recConn) fingerprint() {
	if c.ch != nil || c.meta != nil {
		return
	}
	ch, err := tlsfp.ParseRecords(c.buf)
	if err != nil {
		return
	}
	c.ch = ch
	_, ja3 := tlsfp.JA3(ch)
	c.meta = &tlsMeta{
		sni:     ch.ServerName,
		version: tls.VersionName(ch.MaxVersion()), // offered; replaced by the negotiated one
		alpn:    strings.Join(ch.ALPN, ","),
		ja4:     tlsfp.JA4(ch),
		ja3:     ja3,
	}
}

// tlsConfig is the server configuration of https listeners: any name gets a
// minted certificate; only HTTP/1.1 is offered.
func (l *Listener) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS10, // record old bots too
		NextProtos: []string{"http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if rc, ok := hello.Conn.(*recConn); ok {
				rc.fingerprint()
				rc.stop = true
				rc.buf = rc.buf[:0:0] // the hello is parsed; drop the bytes
			}
			return nil, nil
		},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			local := netip.AddrPort{}
			if hello.Conn != nil {
				local = addrPort(hello.Conn.LocalAddr())
			}
			return l.certs.certificate(certName(hello.ServerName, local))
		},
	}
}

// serveHTTPS does the handshake, recording the ClientHello, then serves
// HTTP requests inside TLS. A connection with no request (an aborted
// handshake, a probe) is still one event with what TLS told.
func (l *Listener) serveHTTPS(cc *conn) {
	var src io.Reader = cc.Conn
	if cc.br != nil && cc.br.Buffered() > 0 {
		src = io.MultiReader(io.LimitReader(cc.br, int64(cc.br.Buffered())), cc.Conn)
		cc.br = nil // still read through src: not returned to the pool
	} else {
		cc.putReader()
	}
	rc := &recConn{Conn: cc.Conn, r: src}
	l.tlsOnce.Do(func() { l.tlsCfg = l.tlsConfig() })
	tc := tls.Server(rc, l.tlsCfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.lim.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if rc.meta == nil {
		rc.fingerprint()
	}
	meta := rc.meta
	if err != nil {
		l.m.tlsFail.Inc()
		if meta == nil && len(rc.buf) == 0 {
			return // nothing at all was sent
		}
		ev := l.newEvent(event.ProtoHTTPS, cc.src, cc.dst)
		in := classify.Input{BodyLen: -1}
		if meta != nil {
			meta.fill(&ev, &in)
		} else {
			// Not a ClientHello: keep what was sent.
			recordPayload(&ev, &in, rc.buf)
		}
		l.emit(&ev, &in)
		return
	}
	st := tc.ConnectionState()
	if meta == nil {
		meta = &tlsMeta{sni: st.ServerName}
	}
	meta.version = tls.VersionName(st.Version)
	meta.cipher = tls.CipherSuiteName(st.CipherSuite)
	cc.putReader()
	cc.tls = tc
	defer tc.Close() // sends close_notify, so clients see a clean end
	if l.serveHTTP(cc, event.ProtoHTTPS, meta) == 0 && !l.stopping.Load() {
		ev := l.newEvent(event.ProtoHTTPS, cc.src, cc.dst)
		in := classify.Input{BodyLen: -1}
		meta.fill(&ev, &in)
		l.emit(&ev, &in)
	}
}

// CAFingerprint is the SHA-256 of the sinkhole CA certificate, in hex, for
// logs and operator documentation.
func (m *certMinter) CAFingerprint() string {
	sum := sha256.Sum256(m.ca.Raw)
	return hex.EncodeToString(sum[:])
}
