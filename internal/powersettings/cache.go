package powersettings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/power"
)

// Cache builds the power provider of each policy once: providers may hold
// connections (libvirt). When a policy's settings or its Secret change, the
// old provider is closed and replaced, so it holds at most one provider per
// policy.
type Cache struct {
	Registry *power.Registry
	// Secrets reads credentials Secrets (live: Secrets are not cached) in
	// the manager's namespace SecretsNamespace.
	Secrets          client.Reader
	SecretsNamespace string

	mu    sync.Mutex
	built map[string]built // by policy (namespace/name)
}

type built struct {
	settings string // hash of provider name and settings
	provider power.Provider
}

// Target builds the provider of a NodeCycle's power-cycle settings and
// finds the machine behind the node. Its errors name the provider and the
// reason, never a credential.
func (c *Cache) Target(ctx context.Context, nc *v1alpha1.NodeCycle, node *corev1.Node) (power.Provider, power.Machine, error) {
	pc := nc.Spec.PowerCycle
	if pc == nil {
		return nil, power.Machine{}, errors.New("strategy power-cycle needs powerCycle settings: set spec.powerCycle in a NodeCyclePolicy that selects this node")
	}
	settings, err := Settings(ctx, c.Secrets, c.SecretsNamespace, nc.Namespace, pc)
	if err != nil {
		return nil, power.Machine{}, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err)
	}
	p, err := c.provider(nc.Namespace+"/"+nc.Spec.Policy, pc.Provider, settings)
	if err != nil {
		return nil, power.Machine{}, fmt.Errorf("power-cycle %w", err)
	}
	m, err := power.Resolve(node, pc.Provider, pc.Machines)
	if err == nil {
		err = Allowed(settings, m)
	}
	if err != nil {
		return nil, power.Machine{}, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err)
	}
	return p, m, nil
}

func (c *Cache) provider(owner, name string, s power.Settings) (power.Provider, error) {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(struct {
		Name string
		S    power.Settings
	}{name, s})
	sum := hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.built[owner]; ok {
		if b.settings == sum {
			return b.provider, nil
		}
		if closer, ok := b.provider.(io.Closer); ok {
			_ = closer.Close()
		}
	}
	p, err := c.Registry.New(name, s)
	if err != nil {
		delete(c.built, owner)
		return nil, err
	}
	if c.built == nil {
		c.built = map[string]built{}
	}
	c.built[owner] = built{settings: sum, provider: p}
	return p, nil
}
