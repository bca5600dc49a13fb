package smart_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/pulsewire/pulsewire/server/smart"
)

var b64 = base64.RawURLEncoding

var cmpIgnoreTokenFields = cmpopts.IgnoreFields(smart.Grant{}, "TokenID", "ExpiresAt")

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// privateJWKS is a JWK Set holding a private key (which a client must
// never register).
func privateJWKS(t *testing.T) []byte {
	t.Helper()
	testKeys(t)
	k, err := jwk.Import(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "priv")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	b, _ := json.Marshal(set)
	return b
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
