package node

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
)

const (
	readKey   = "read-key-0123456789"
	ingestKey = "ingest-key-0123456789"
	adminKey  = "admin-key-0123456789"
)

func keyedConfig(t *testing.T) config.Config {
	cfg := defaultConfig(t)
	cfg.APIKeys = []config.APIKey{
		{Key: readKey, Scopes: []string{"read"}},
		{Key: ingestKey, Scopes: []string{"ingest", "read"}},
		{Key: adminKey, Scopes: []string{"admin", "read", "ingest"}},
	}
	return cfg
}

func do(t *testing.T, method, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestAPIKeysAndScopes(t *testing.T) {
	n := startNode(t, keyedConfig(t))
	ev := `[{"user_id":"u","item_id":"a","type":"view"}]`
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"health needs no key", "GET", "/healthz", "", "", 200, ""},
		{"ready needs no key", "GET", "/readyz", "", "", 200, ""},
		{"missing key", "GET", "/v1/trending", "", "", 401, "unauthorized"},
		{"wrong key", "GET", "/v1/trending", "not-a-key-0123456789", "", 401, "unauthorized"},
		{"read key reads", "GET", "/v1/trending", readKey, "", 200, ""},
		{"read key cannot ingest", "POST", "/v1/events", readKey, ev, 403, "forbidden"},
		{"read key ranks (a POST that reads)", "POST", "/v1/users/u/rank", readKey, `{"items":["a","b"]}`, 200, ""},
		{"read key cannot PUT on the rank path", "PUT", "/v1/users/u/rank", readKey, `{"items":["a"]}`, 403, "forbidden"},
		{"ingest key ingests", "POST", "/v1/events", ingestKey, ev, 200, ""},
		{"ingest key cannot write the catalogue", "PUT", "/v1/items/a", ingestKey, `{"title":"A"}`, 403, "forbidden"},
		{"admin key writes the catalogue", "PUT", "/v1/items/a", adminKey, `{"title":"A"}`, 200, ""},
		{"metrics need admin", "GET", "/metrics", readKey, "", 403, "forbidden"},
		{"admin reads metrics", "GET", "/metrics", adminKey, "", 200, ""},
		{"unknown route still needs a key", "GET", "/v1/nope", "", "", 401, "unauthorized"},
		{"read key cannot log an impression with shown=true", "GET", "/v1/users/u/recommendations?shown=true", readKey, "", 403, "forbidden"},
		{"read key cannot rank with shown=true", "POST", "/v1/users/u/rank?shown=true", readKey, `{"items":["a","b"]}`, 403, "forbidden"},
		{"ingest key (with read) logs what it shows", "GET", "/v1/users/u/recommendations?shown=true", ingestKey, "", 200, ""},
		{"read key cannot post impressions", "POST", "/v1/impressions", readKey, `{}`, 403, "forbidden"},
		{"ingest key cannot define experiments", "POST", "/v1/experiments", ingestKey, `{}`, 403, "forbidden"},
		{"ingest key cannot change experiments", "PATCH", "/v1/experiments/x", ingestKey, `{}`, 403, "forbidden"},
		{"read key reads results", "GET", "/v1/experiments", readKey, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, n.URL+tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`) {
				t.Fatalf("body %s lacks code %s", body, tt.code)
			}
			if strings.Contains(body, "key-0123456789") {
				t.Fatalf("a key leaked into a reply: %s", body)
			}
		})
	}
	// X-API-Key works as well as Authorization.
	req, _ := http.NewRequest("GET", n.URL+"/v1/trending", nil)
	req.Header.Set("X-API-Key", readKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("X-API-Key: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestRateLimitPerKey(t *testing.T) {
	cfg := keyedConfig(t)
	cfg.Limits.RatePerSecond = 1
	cfg.Limits.Burst = 3
	n := startNode(t, cfg)
	for i := range 3 {
		if resp, body := do(t, "GET", n.URL+"/v1/trending", readKey, ""); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := do(t, "GET", n.URL+"/v1/trending", readKey, "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "rate_limited") {
		t.Fatalf("flood: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Another key has its own bucket; health checks are never limited.
	if resp, _ := do(t, "GET", n.URL+"/v1/trending", ingestKey, ""); resp.StatusCode != 200 {
		t.Fatalf("another key was limited: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", n.URL+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz limited: %d", resp.StatusCode)
	}
}

// TestSlowClientIsCut: a client that sends its headers too slowly is
// disconnected after the read-header timeout, and others are served
// meanwhile.
func TestSlowClientIsCut(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Timeouts.ReadHeader = config.Duration(300 * time.Millisecond)
	n := startNode(t, cfg)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/trending HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "GET", n.URL+"/v1/trending", "", ""); resp.StatusCode != 200 {
		t.Fatalf("another client was not served: %d", resp.StatusCode)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadString('\n')
	if err == nil && time.Since(start) > 4*time.Second {
		t.Fatal("the slow connection was not closed")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the slow connection open for 5 s")
	}
}

func TestNonLoopbackNeedsKeysOrInsecure(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Addr = "0.0.0.0:8080"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("open non-loopback address accepted: %v", err)
	}
	cfg.Insecure = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Insecure = false
	cfg.APIKeys = []config.APIKey{{Key: adminKey, Scopes: []string{"admin"}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.APIKeys = []config.APIKey{{Key: "short", Scopes: []string{"admin"}}}
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "16 characters") {
		t.Fatalf("short key accepted: %v", err)
	}
	cfg.APIKeys = []config.APIKey{{Key: adminKey, Scopes: []string{"everything"}}}
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "unknown scope") {
		t.Fatalf("unknown scope accepted: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamrec test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	cfg := defaultConfig(t)
	var pool *x509.CertPool
	cfg.TLS.CertFile, cfg.TLS.KeyFile, pool = selfSigned(t)
	n := startNode(t, cfg)
	url := strings.Replace(n.URL, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get(n.URL + "/readyz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered on the TLS listener")
	}
}
