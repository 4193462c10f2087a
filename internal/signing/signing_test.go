package signing

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A signature is good for its node, request and update, with its key,
// until it expires; any change of one of them refuses it.
func TestSignVerify(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	now := time.Unix(1_800_000_000, 0)
	req := Request{Node: "worker-1", ID: "ns/nc/uid-1", Update: `{"id":"u1","files":[]}`}
	sig := Sign(key, req, now)
	if err := Verify(key, req, sig, now.Add(Lifetime-time.Second)); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	other := func(f func(*Request)) Request { r := req; f(&r); return r }
	for name, tc := range map[string]struct {
		key []byte
		req Request
		sig string
		at  time.Time
		why string
	}{
		"another node":    {key, other(func(r *Request) { r.Node = "worker-2" }), sig, now, "not the manager's"},
		"another request": {key, other(func(r *Request) { r.ID = "ns/nc/uid-2" }), sig, now, "not the manager's"},
		"another update":  {key, other(func(r *Request) { r.Update = `{"id":"u2"}` }), sig, now, "not the manager's"},
		"no update":       {key, other(func(r *Request) { r.Update = "" }), sig, now, "not the manager's"},
		"another key":     {bytes.Repeat([]byte{8}, 32), req, sig, now, "not the manager's"},
		"unsigned":        {key, req, "", now, "not signed"},
		"malformed":       {key, req, "v2.1.x", now, "not of the form"},
		"expiry changed":  {key, req, strings.Replace(sig, "v1.1800003600.", "v1.1900000000.", 1), now, "not the manager's"},
		"expired":         {key, req, sig, now.Add(Lifetime + time.Second), "expired"},
	} {
		if err := Verify(tc.key, tc.req, tc.sig, tc.at); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.why)
		}
	}
}

// A new key is 32 random bytes in an immutable Secret; a short one is
// refused.
func TestNewSecret(t *testing.T) {
	a, err := NewSecret("nodecycle-system")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret("nodecycle-system")
	ka, err := FromSecret(a)
	if err != nil || len(ka) != 32 || !*a.Immutable || a.Name != SecretName {
		t.Fatalf("%+v %v", a, err)
	}
	if kb, _ := FromSecret(b); bytes.Equal(ka, kb) {
		t.Fatal("two keys are the same")
	}
	a.Data[SecretKey] = a.Data[SecretKey][:16]
	if _, err := FromSecret(a); err == nil {
		t.Fatal("a 16-byte key was taken")
	}
}
