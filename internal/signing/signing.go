// Package signing signs the manager's reboot requests, and the in-place
// updates that ride on them, for one node: a Node annotation that anyone
// with `patch nodes` can write (a DaemonSet, an autoscaler, a stolen
// kubelet credential) then neither reboots a node nor writes a file,
// because the agent carries out only what carries the manager's signature
// for that node, that request and that update, made in the last hour.
//
// The key is per cluster: 32 random bytes in the Secret
// nodecycle-request-key of the agent's namespace, made by the manager the
// first time it asks for a reboot there, and readable by the agent alone
// (a Role that names that Secret). HMAC-SHA256 is enough: only the
// manager and the agents hold the key, and the agent only checks.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretName is the key's Secret, in the agent's namespace.
const SecretName = "nodecycle-request-key"

// SecretKey is the Secret's data key that holds the key.
const SecretKey = "key"

// Lifetime is how long a signature is good for: longer than any reboot
// request waits for its agent (the manager's reboot timeout is 10 minutes
// by default, and a request left behind is signed again when it is
// written again); an old request copied back on the node is refused.
const Lifetime = time.Hour

// Request is what a signature covers.
type Request struct {
	// Node is the Node's name: a signature is good on that node only.
	Node string
	// ID is the reboot request's id (nodecycle.io/reboot-request).
	ID string
	// Update is the value of nodecycle.io/update ("" : none).
	Update string
}

func (r Request) message(expires int64) []byte {
	return fmt.Appendf(nil, "nodecycle-v1\x00%s\x00%s\x00%d\x00%s", r.Node, r.ID, expires, r.Update)
}

// sum is the MAC of r good until expires.
func sum(key []byte, r Request, expires int64) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(r.message(expires))
	return mac.Sum(nil)
}

// Sign is the value of nodecycle.io/reboot-request-signature for r, good
// until now+Lifetime: "v1.<unix expiry>.<base64url HMAC-SHA256>".
func Sign(key []byte, r Request, now time.Time) string {
	expires := now.Add(Lifetime).Unix()
	return fmt.Sprintf("v1.%d.%s", expires, base64.RawURLEncoding.EncodeToString(sum(key, r, expires)))
}

// ErrUnsigned says the request carries no signature.
var ErrUnsigned = errors.New("the reboot request is not signed by nodecycle's manager")

// Verify checks sig against r at now.
func Verify(key []byte, r Request, sig string, now time.Time) error {
	if sig == "" {
		return ErrUnsigned
	}
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return fmt.Errorf("the reboot request's signature %q is not of the form v1.<expiry>.<mac>", sig)
	}
	expires, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return fmt.Errorf("the reboot request's signature has no expiry: %w", err)
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("the reboot request's signature is not base64: %w", err)
	}
	if !hmac.Equal(got, sum(key, r, expires)) {
		return fmt.Errorf("the reboot request's signature is not the manager's for node %s, request %s and its update", r.Node, r.ID)
	}
	if now.Unix() > expires {
		return fmt.Errorf("the reboot request's signature expired at %s", time.Unix(expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// FromSecret is the key its Secret holds.
func FromSecret(s *corev1.Secret) ([]byte, error) {
	key := s.Data[SecretKey]
	if len(key) < 32 {
		return nil, fmt.Errorf("the request key (Secret %s/%s, key %q) holds %d bytes, want 32 or more", s.Namespace, s.Name, SecretKey, len(key))
	}
	return key, nil
}

// NewSecret is a fresh key's Secret for namespace: 32 random bytes,
// immutable (a key is never changed in place; delete the Secret to make a
// new one, and every request is signed again with it).
func NewSecret(namespace string) (*corev1.Secret, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	immutable := true
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: SecretName, Labels: map[string]string{"app.kubernetes.io/name": "nodecycle"}},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  &immutable,
		Data:       map[string][]byte{SecretKey: fresh},
	}, nil
}
