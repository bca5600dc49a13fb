package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// getAuth is the issue-5 workload: GET Observation by id at 32 clients, as
// the "get" workload, on a server that requires SMART access tokens — a
// backend service's token (client_credentials, private_key_jwt ES384,
// scope system/*.rs), so every request is authenticated and goes through
// the policy decision. It prints the throughput relative to plain get.
func getAuth(ctx context.Context, out io.Writer, bin, dsn string, c config, plain result) error {
	for _, auditReads := range []bool{false, true} {
		if err := getAuthOnce(ctx, out, bin, dsn, c, plain, auditReads); err != nil {
			return err
		}
	}
	return nil
}

func getAuthOnce(ctx context.Context, out io.Writer, bin, dsn string, c config, plain result, auditReads bool) error {
	srv, err := startServer(ctx, bin, dsn, c.profile != "", true, auditReads)
	if err != nil {
		return err
	}
	defer srv.stop()
	token, err := backendToken(ctx, bin, dsn, srv.url+"/t/bench")
	if err != nil {
		return fmt.Errorf("getting an access token: %w", err)
	}
	base := srv.url + "/t/bench/fhir"
	prof := make(chan error, 1)
	if c.profile != "" {
		name := "get-auth.pprof"
		if auditReads {
			name = "get-auth-audited.pprof"
		}
		go func() { prof <- srv.profile(ctx, filepath.Join(c.profile, name), c.duration) }()
	}
	r, err := drive(ctx, srv, 32, c.duration, func(rng *mrand.Rand) (*http.Request, int) {
		req, _ := http.NewRequest(http.MethodGet, base+"/Observation/"+obsID(rng.IntN(c.observations)), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return req, http.StatusOK
	})
	if err != nil {
		return err
	}
	if c.profile != "" {
		if err := <-prof; err != nil {
			return fmt.Errorf("profiling get-auth: %w", err)
		}
	}
	target := "within 10% of get"
	if plain.rps > 0 {
		target = fmt.Sprintf("within 10%% of get: %.0f%% of it", 100*r.rps/plain.rps)
	}
	name := "get-auth"
	if auditReads {
		name = "get-auth-audited"
		target = "(each read also writes an AuditEvent)"
	}
	fmt.Fprintf(out, "%-18s %8d %8.0f %8s %9s %9s %10s %7d   %s\n", name, 32, r.rps,
		fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.cpuPerReq), fmtDur(r.dbCPUPerReq), r.errors, target)
	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// backendToken registers a backend client with a new P-384 key (through
// the CLI) and gets a token for it at the tenant's token endpoint.
func backendToken(ctx context.Context, bin, dsn, tenantURL string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return "", err
	}
	pad := func(n *big.Int) []byte { return n.FillBytes(make([]byte, 48)) }
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-384", "kid": "bench", "alg": "ES384", "use": "sig",
		"x": b64(pad(key.X)), "y": b64(pad(key.Y)),
	}}})
	dir, err := os.MkdirTemp("", "pwbench")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		return "", err
	}
	id := fmt.Sprintf("pwbench-%d", time.Now().UnixNano())
	if b, err := exec.CommandContext(ctx, bin, "clients", "add", "--postgres", dsn, "--tenant", "bench", "--id", id,
		"--type", "confidential-asymmetric", "--scope", "system/*.rs", "--jwks-file", file).CombinedOutput(); err != nil {
		return "", fmt.Errorf("clients add: %v\n%s", err, b)
	}
	tokenURL := tenantURL + "/auth/token"
	head, _ := json.Marshal(map[string]string{"alg": "ES384", "typ": "JWT", "kid": "bench"})
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": tokenURL,
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": b64(jti)})
	signing := b64(head) + "." + b64(claims)
	sum := sha512.Sum384([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	assertion := signing + "." + b64(append(pad(r), pad(s)...))
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/*.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: %s %s (%s)", resp.Status, tr.Error, tr.Description)
	}
	return tr.AccessToken, nil
}
