package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

const smartUsage = `usage:
  pulsewire clients add --tenant T --type public|confidential-symmetric|confidential-asymmetric --scope "S ..."
                        [--id ID] [--name NAME] [--redirect-uri URI]... [--jwks-uri URL | --jwks-file FILE]
  pulsewire clients list --tenant T
  pulsewire clients remove --tenant T ID
  pulsewire users add --tenant T --username U [--fhir-user Practitioner/ID] [--name NAME] [--password-file FILE|-]
  pulsewire users list --tenant T
  pulsewire users remove --tenant T USERNAME
  pulsewire keys rotate --tenant T
  pulsewire keys list --tenant T`

// smartCommand manages the SMART authorization server's registry on the
// store directly (the server picks the changes up: clients and users at
// once, keys within a minute):
//
//	clients add|list|remove, users add|list|remove, keys rotate|list
func smartCommand(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return smartCommandIn(ctx, cmd, args, getenv, os.Stdin, stdout, stderr)
}

func smartCommandIn(ctx context.Context, cmd string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", smartUsage)
	}
	sub, args := args[0], args[1:]
	var cfg app.Config
	fs := flag.NewFlagSet(cmd+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	tenant := fs.String("tenant", "", "tenant")
	var (
		id, name, typ, scope, jwksURI, jwksFile string
		username, fhirUser                      string
		passwordFile                            string
		redirects                               multiFlag
	)
	switch cmd + " " + sub {
	case "clients add":
		fs.StringVar(&id, "id", "", "client_id (default: generated)")
		fs.StringVar(&name, "name", "", "name shown on the approval page")
		fs.StringVar(&typ, "type", "", "public, confidential-symmetric or confidential-asymmetric")
		fs.StringVar(&scope, "scope", "", "space-separated scopes the client may be granted")
		fs.Var(&redirects, "redirect-uri", "registered redirect URI (repeatable; matched exactly)")
		fs.StringVar(&jwksURI, "jwks-uri", "", "URL of the client's JWK Set (confidential-asymmetric)")
		fs.StringVar(&jwksFile, "jwks-file", "", "file holding the client's public JWK Set (confidential-asymmetric)")
	case "users add":
		fs.StringVar(&username, "username", "", "login name")
		fs.StringVar(&fhirUser, "fhir-user", "", "the user's FHIR resource, e.g. Practitioner/123 or Patient/456")
		fs.StringVar(&name, "name", "", "display name")
		fs.StringVar(&passwordFile, "password-file", "", "read the password from the first line of FILE (- is standard input); default: generate one")
	}
	if err := fs.Parse(flagsFirst(args)); err != nil {
		return err
	}
	if *tenant == "" {
		return fmt.Errorf("--tenant is required\n%s", smartUsage)
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	reg, ok := s.(registry.Store)
	if !ok {
		return fmt.Errorf("the store keeps no SMART registry")
	}
	exists, err := s.TenantExists(ctx, *tenant)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("tenant %s is not registered (pulsewire tenant add %s)", *tenant, *tenant)
	}
	arg := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("usage: pulsewire %s %s --tenant T NAME", cmd, sub)
		}
		return fs.Arg(0), nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	now := time.Now()
	switch cmd + " " + sub {
	case "clients add":
		spec := smart.ClientSpec{ID: id, Name: name, Type: registry.ClientType(typ), RedirectURIs: redirects, Scope: scope, JWKSURL: jwksURI}
		if jwksFile != "" {
			b, err := os.ReadFile(jwksFile)
			if err != nil {
				return fmt.Errorf("reading the JWKS file: %w", err)
			}
			spec.JWKS = b
		}
		c, secret, err := smart.NewClient(spec, now)
		if err != nil {
			return err
		}
		if err := reg.AddClient(ctx, *tenant, c); err != nil {
			return fmt.Errorf("adding client %s: %w", c.ID, err)
		}
		v := smart.ViewClient(c)
		v.Secret = secret
		if secret != "" {
			fmt.Fprintln(stderr, "client_secret is shown once; only its hash is stored")
		}
		return enc.Encode(v)
	case "clients list":
		cs, err := reg.Clients(ctx, *tenant)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			fmt.Fprintln(stdout, "no clients")
		}
		for _, c := range cs {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", c.ID, c.Type, strings.Join(c.Scopes, " "), c.Name)
		}
		return nil
	case "clients remove":
		id, err := arg()
		if err != nil {
			return err
		}
		if err := reg.DeleteClient(ctx, *tenant, id); err != nil {
			return fmt.Errorf("removing client %s: %w", id, err)
		}
		fmt.Fprintln(stdout, "client", id, "removed")
		return nil
	case "users add":
		password, generated := "", false
		if passwordFile != "" {
			in := stdin
			if passwordFile != "-" {
				f, err := os.Open(passwordFile)
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
				defer f.Close()
				in = f
			}
			line, err := bufio.NewReader(in).ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("reading the password: %w", err)
			}
			password = strings.TrimRight(line, "\r\n")
		} else {
			password, generated = smartPassword(), true
		}
		u, err := smart.NewUser(smart.UserSpec{Username: username, Password: password, FHIRUser: fhirUser, Name: name}, now)
		if err != nil {
			return err
		}
		if err := reg.AddUser(ctx, *tenant, u); err != nil {
			return fmt.Errorf("adding user %s: %w", username, err)
		}
		fmt.Fprintln(stdout, "user", username, "added")
		if generated {
			fmt.Fprintf(stdout, "password (shown once; only its bcrypt hash is stored):\n%s\n", password)
		}
		return nil
	case "users list":
		us, err := reg.Users(ctx, *tenant)
		if err != nil {
			return err
		}
		if len(us) == 0 {
			fmt.Fprintln(stdout, "no users")
		}
		for _, u := range us {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", u.Username, u.FHIRUser, u.Name)
		}
		return nil
	case "users remove":
		name, err := arg()
		if err != nil {
			return err
		}
		if err := reg.DeleteUser(ctx, *tenant, name); err != nil {
			return fmt.Errorf("removing user %s: %w", name, err)
		}
		fmt.Fprintln(stdout, "user", name, "removed")
		return nil
	case "keys rotate":
		k, err := smart.RotateKey(ctx, reg, *tenant, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new signing key %s (%s): published within a minute, signing after five minutes\n", k.ID, k.Algorithm)
		return nil
	case "keys list":
		ks, err := reg.SigningKeys(ctx, *tenant)
		if err != nil {
			return err
		}
		if len(ks) == 0 {
			fmt.Fprintln(stdout, "no signing keys (the server creates one on first use)")
		}
		for _, k := range ks {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", k.ID, k.Algorithm, k.Created.UTC().Format(time.RFC3339))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd+" "+sub, smartUsage)
}

// smartPassword is a generated login password (128 bits).
func smartPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
